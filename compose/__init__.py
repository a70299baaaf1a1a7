"""The compose lab: `python -m compose.lab` (what `./gs lab` runs), its checks and its views of the nodes."""
