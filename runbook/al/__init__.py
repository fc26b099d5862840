"""The labelling loop of issue 15 (active learning with a DeePMD committee), as stages of
the engine:

explore (md, `potential: deepmd` with a committee) -> `select` (runbook.al.select:
deviation window, farthest-point diversity, capped) -> `label` (runbook.al.label: pw.x
with the dft stage's settings; per-frame store, a finished label never re-run) ->
`dataset` (runbook.al.dataset: the previous dataset + the new labels, `added.json`) ->
N `train_deepmd` stages (seeds) -> `committee` (runbook.deepmd.committee) -> explore
with the new committee -> ...

runbook.al.loop writes those stage blocks for a number of iterations onto a study that
already has a dataset and a first committee (iteration 0), and summarises the
candidate fractions per iteration.
"""
