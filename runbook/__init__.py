"""The stage engine (render / execute / collect) and the studies it runs."""
