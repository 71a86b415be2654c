"""Drive vidpipe from another program over Dagster's GraphQL API (docs/python-client.md).

Creates a project with the `new_project` job, waits for the render run its sensor starts, approves
the project when it stops for review, and prints the final video's path and cost. Needs a running
`dagster-webserver` and `dagster-daemon` (`make dev`) for the same deployment.

    .venv/bin/python examples/python_client.py --port 3000 "A paper boat sails down a rainy street"
"""

from __future__ import annotations

import argparse
import sys

from dagster import DagsterRunStatus

from vidpipe_dagster.client import VidpipeClient, VidpipeClientError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument(
        "--review", choices=["none", "keyframes"], help="stop for approval before the clips (default: the deployment's)"
    )
    parser.add_argument("--scenes", type=int)
    parser.add_argument("--max-cost", type=float, help="the budget to approve (USD)")
    args = parser.parse_args()

    client = VidpipeClient(args.host, args.port)
    fields = {k: v for k, v in {"review": args.review, "scenes": args.scenes}.items() if v is not None}
    try:
        made = client.new_project(args.prompt, **fields)
        render = client.started_by(made)  # fails with the run's message for a bad spec
        project = client.project_of(made)
        assert project is not None  # started_by returned: the new_project run registered it
        print(f"project {project}: render run {render}")
        if client.wait(render) != DagsterRunStatus.SUCCESS:
            print(f"render failed: {client.failure(render)}", file=sys.stderr)
            return 1
        if client.final_video(project) is None:  # stopped before the clips: awaiting approval
            approval = client.approve(project, max_cost_usd=args.max_cost)
            render = client.started_by(approval)
            print(f"approved: render run {render}")
            if client.wait(render) != DagsterRunStatus.SUCCESS:
                print(f"render failed: {client.failure(render)}", file=sys.stderr)
                return 1
        video = client.final_video(project)
        if video is None:
            print(f"{project} has no final video", file=sys.stderr)
            return 1
        print(f"final video: {video.path}")
        print(f"cost: ${video.cost_usd:.2f}")
    except VidpipeClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
