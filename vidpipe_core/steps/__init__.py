"""The pipeline's stages, in order. Each is one Dagster asset of the same name and one module here."""

STORYBOARD, KEYFRAMES, CLIPS, FINAL_VIDEO = "storyboard", "keyframes", "clips", "final_video"
STAGES = (STORYBOARD, KEYFRAMES, CLIPS, FINAL_VIDEO)
