"""SQLAlchemy 2.0 models. One enum per status, used everywhere (no string literals elsewhere).

Keyframes and clips are keyed by (project, index, fingerprint): a row is the ledger entry of
one paid-for artifact, so reverting an edit reuses what was already bought, and the unique
key is what stops two runs from submitting the same scene twice."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def utc(dt: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive UTC, PostgreSQL aware local time)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class KeyframeStatus(str, enum.Enum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class ClipStatus(str, enum.Enum):
    CLAIMED = "claimed"  # a run owns the scene; nothing sent yet
    SUBMITTED = "submitted"  # the provider accepted it; operation_name is set
    DONE = "done"  # bytes stored at path (`error` notes damage found since)
    REJECTED = "rejected"  # content-safety filter; reasons recorded
    FAILED = "failed"  # error recorded


def _enum(e: type[enum.Enum]) -> Enum:
    return Enum(e, values_callable=lambda cls: [m.value for m in cls], native_enum=False, length=16)


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(255), default="cli")
    # New for every project record: Dagster materializations are trusted only when they carry it.
    nonce: Mapped[str | None] = mapped_column(String(32), nullable=True, default=lambda: uuid.uuid4().hex)
    # The storyboard document (plan, style guide, fingerprint); storyboard.json is written from it.
    storyboard: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    lock_holder: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lock_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Scene(Base):
    __tablename__ = "scenes"
    __table_args__ = (UniqueConstraint("project_id", "index", name="uq_scene"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    start_frame_prompt: Mapped[str] = mapped_column(Text)
    end_frame_prompt: Mapped[str] = mapped_column(Text)
    motion_prompt: Mapped[str] = mapped_column(Text)
    transition_notes: Mapped[str] = mapped_column(Text, default="")
    # Names of the style guide's characters the scene shows (None in rows written before characters).
    characters: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The scene's words and sound (None in rows written before them, read as none).
    narration: Mapped[str | None] = mapped_column(Text, nullable=True)
    dialogue: Mapped[str | None] = mapped_column(Text, nullable=True)
    sound: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ImageRow:
    """The ledger row of one stored image, a character's reference sheet or a keyframe: what it
    should be (``fingerprint``), who made it, where its bytes are and what they cost. One shape for
    both tables (each adds its key: a sheet's ``name``, a frame's ``frame_index``);
    ``record_done`` is the one way a made image is written into it, ``made`` the one way it is read."""

    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[KeyframeStatus] = mapped_column(_enum(KeyframeStatus), default=KeyframeStatus.PENDING)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def made(self) -> bool:
        """The image is made: its bytes are stored at ``path`` (whether they still match is
        ``sha256``'s to say: vidpipe_core.integrity)."""
        return self.status == KeyframeStatus.DONE and bool(self.path)

    def record_done(self, path: str, sha256: str, width: int, height: int, cost_usd: float) -> None:
        """Record the image as made (its bytes are already at ``path``); its cost adds to what
        earlier renders of the same row cost."""
        self.status, self.path, self.sha256, self.width, self.height = KeyframeStatus.DONE, path, sha256, width, height
        self.cost_usd = (self.cost_usd or 0.0) + cost_usd
        self.error = None


class CharacterSheetRow(ImageRow, Base):
    """The ledger of a character's reference sheet: one image, paid once, reused by every frame
    that shows the character while its fingerprint (provider, model, prompt, style) holds."""

    __tablename__ = "character_sheets"
    __table_args__ = (UniqueConstraint("project_id", "name", "fingerprint", name="uq_character_sheet"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(Text)


class Keyframe(ImageRow, Base):
    """Frame k is scene k's start and scene k-1's end (N scenes have N+1 frames)."""

    __tablename__ = "keyframes"
    __table_args__ = (UniqueConstraint("project_id", "frame_index", "fingerprint", name="uq_keyframe"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    frame_index: Mapped[int] = mapped_column(Integer)


class VideoClip(Base):
    __tablename__ = "video_clips"
    __table_args__ = (UniqueConstraint("project_id", "scene_index", "fingerprint", name="uq_clip"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    scene_index: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[ClipStatus] = mapped_column(_enum(ClipStatus), default=ClipStatus.CLAIMED)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    operation_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    prompt_used: Mapped[str | None] = mapped_column(Text, nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    safety_reasons: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What the polls of a wait that began at the submission saw (vidpipe_core.polling learns from
    # them): when the last poll that found the operation running was sent (None: its first poll
    # found it done), and when the poll that first found it done was sent and answered. All None
    # for an operation re-attached after a resume or restart (and for rows older than 0004).
    running_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    done_asked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    done_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ApprovalRow(Base):
    """The ledger of approvals (`vidpipe_core.approvals`): a person's go-ahead to pay for the clips
    of a project under review, or a deliberate new take (`regenerate`, `retake`) that counts as its
    own. It covers exactly the clips it lists (their fingerprints: the storyboard's, each scene's
    start and end frames', the clip's) for the project record of ``nonce``."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str | None] = mapped_column(String(32), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # approve, regenerate, retake
    source: Mapped[str] = mapped_column(String(255))  # cli, ui, api (and the run it came from)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    estimate_usd: Mapped[float] = mapped_column(Float, default=0.0)
    budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    storyboard_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # One entry per clip covered: {"scene": 1-based, "start_frame", "end_frame", "clip"} fingerprints.
    scenes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class NarrationLine(Base):
    """The ledger of one scene's narration: the line said by the narrator (provider, model, voice,
    language and text make its fingerprint), its WAV (after any speed-up) with its sha256, its
    measured length, the speed-up applied and what it cost. Reused while its fingerprint holds and
    its bytes match; a line said again (a repair) adds its cost to the row's."""

    __tablename__ = "narration_lines"
    __table_args__ = (UniqueConstraint("project_id", "scene_index", "fingerprint", name="uq_narration_line"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    scene_index: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[KeyframeStatus] = mapped_column(_enum(KeyframeStatus), default=KeyframeStatus.PENDING)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    tempo: Mapped[float] = mapped_column(Float, default=1.0)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # e.g. silence: no speech engine
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    @property
    def made(self) -> bool:
        return self.status == KeyframeStatus.DONE and bool(self.path)
