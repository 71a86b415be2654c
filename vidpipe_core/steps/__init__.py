"""The pipeline's stages, in order. Each is one Dagster asset of the same name and one module here."""

STORYBOARD, CHARACTERS, KEYFRAMES, CLIPS, FINAL_VIDEO = "storyboard", "characters", "keyframes", "clips", "final_video"
STAGES = (STORYBOARD, CHARACTERS, KEYFRAMES, CLIPS, FINAL_VIDEO)
