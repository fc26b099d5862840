"""Phase 3, images: each image of the install present, with labels equal to the lock."""

from __future__ import annotations

from bundle import images, pack
from bundle.core.errors import BundleError
from bundle.verify.common import E_IMG_LABELS, E_IMG_MISSING, FAIL, PASS, SKIP, Check, Context


def expected_images(ctx: Context) -> list[dict]:
    """The images this installation must have: from the install record, else the flavor's."""
    if ctx.installed:
        return list(ctx.record.get("images", []))
    return [{"ref": images.image_tag(ctx.opts.profile), "id": None}]


def phase_images(ctx: Context) -> list[Check]:
    wanted = expected_images(ctx)
    if not wanted:
        return [Check("images", "images", SKIP, "this bundle ships no images")]
    hint = (
        f"hint: re-run `bundle install BUNDLE --prefix {ctx.root}` (it loads missing images)"
        if ctx.installed
        else f"hint: `bundle images build --flavor {ctx.opts.profile}`"
    )
    out = []
    for img in wanted:
        ref = img["ref"]
        if img.get("sif"):  # apptainer installs: the SIF file is the image
            sif = ctx.root / img["sif"]
            ok = sif.is_file()
            why = f"{img['sif']} present" if ok else f"{img['sif']} missing; {hint}"
            out.append(Check("images", ref, PASS if ok else FAIL, why, "" if ok else E_IMG_MISSING))
            continue
        try:
            info = pack.image_info(ref, hint)
        except BundleError as e:
            out.append(Check("images", ref, FAIL, str(e), E_IMG_MISSING))
            continue
        ctx.images.append({"ref": ref, **info})
        if img.get("id") and info["id"] != img["id"]:
            why = f"present, but ID {info['id'][:19]} != {img['id'][:19]} installed; {hint}"
            out.append(Check("images", ref, FAIL, why, E_IMG_MISSING, info["id"], img["id"]))
            continue
        bad = [c for c in images.check_labels(info["labels"]) if not c.ok]
        if bad:
            why = "; ".join(
                f"label {c.label} is {c.found!r}, the lock says {c.expected!r}" for c in bad
            )
            out.append(Check("images", ref, FAIL, why, E_IMG_LABELS))
        else:
            out.append(Check("images", ref, PASS, "present, labels = lock", value=info["id"][:19]))
    return out
