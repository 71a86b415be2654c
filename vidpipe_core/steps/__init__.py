"""The pipeline's stages, in order. Each is one Dagster asset of the same name and one module here.
The narration needs only the storyboard and is needed only by the final video: it is listed just
before the final video, so what is downstream of it is the final video alone."""

STORYBOARD, CHARACTERS, KEYFRAMES, CLIPS, FINAL_VIDEO = "storyboard", "characters", "keyframes", "clips", "final_video"
NARRATION = "narration"
STAGES = (STORYBOARD, CHARACTERS, KEYFRAMES, CLIPS, NARRATION, FINAL_VIDEO)
# The Dagster steps, where they are not the stage's own: the keyframes are made in the clips step,
# which submits each scene's clip as soon as its two frames exist (frame_feed).
STEP_OF = {KEYFRAMES: CLIPS}
STEPS = tuple(dict.fromkeys(STEP_OF.get(stage, stage) for stage in STAGES))
