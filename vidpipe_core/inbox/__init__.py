"""The prompt inbox: prompt files dropped into a folder become projects.

A file is YAML (``.yaml``/``.yml``) or JSON (``.json``) with ``prompt`` and the optional fields of
``vidpipe_core.request.ProjectRequest`` (the options of `vidpipe new`), or plain text (``.txt``) whose
whole content is the prompt. Writers create the file under a hidden or ``*.tmp`` name (ignored) and
rename it when complete; files modified in the last ``inbox_min_age_s`` seconds are left for the
next look as well.

Every file that is read ends in exactly one place, so nothing is evaluated twice:

    accepted/<project-id>--<name>           registered (or identical to an earlier registration)
    rejected/<name> + <name>.error.txt      refused, with what to change; never retried

The inbox and both folders are opened once per look without following links (a linked folder is
a ``ConfigurationError``); every read, move and note goes through those descriptors, so nothing is
ever written outside the inbox, whatever its writers put there.

A registered project's ``source`` is ``inbox:accepted/<project-id>--<name>;sha256=<digest>``. The
digest is of the parsed request, so re-dropping identical content finds the project it made
instead of making a second one. The project row is written before the file is moved; a crash in
between is finished by the next look (the digest finds the row, the file is moved).

The modules, each importing only those above it:

    files     reading a file safely: its name, its bytes (no links, bounded), UTF-8 (InboxSettings)
    parse     the request of a file: format, YAML/JSON/text to fields, checked (InboxEntry)
    folders   the inbox, accepted/ and rejected/ opened without links; ready files; the moves
    queries   projects made from the inbox, from the database (their source and its digest)
    tick      one look: register, recognise or reject each ready file once (process_inbox)

Nothing here imports Dagster: the sensor (`vidpipe_dagster/sensors.py`) turns an ``InboxTick`` into
partitions and run requests.
"""
