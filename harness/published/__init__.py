"""The published measurements of the reference study (ML.ENERGY Leaderboard v3): pinned, verified, loaded."""
