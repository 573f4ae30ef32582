"""Generation pipeline: preprocessing, drag trajectories, sampling and export of generated videos."""
