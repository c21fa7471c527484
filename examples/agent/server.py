"""The agent's web server: a pure ASGI app (no framework) that streams answers over SSE.

Run from the repository root (settings from AGENT_DB and AGENT_DELAY):
``uvicorn examples.agent.server:app --port 8000``, then open http://127.0.0.1:8000/.

- ``POST /answers`` (JSON ``{"id": ..., "prompt": ...}``) starts the answer's workflow
  (the same ID again returns the same run) and says where its stream is.
- ``GET /answers/{id}/stream``: Server-Sent Events, one per token, each with its stream
  offset as its ``id``; a reconnect with ``Last-Event-ID: N`` (browsers send it by
  themselves) resumes at offset N + 1. An ``end`` event closes the stream.
- ``POST /answers/{id}/approve`` or ``/reject``: the person's decision on the draft.
- ``GET /answers/{id}``: the workflow's status and result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

import litewf

from .agent import TOKENS, Config, build, workflow_id

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ANSWER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PAGE = Path(__file__).with_name("page.html")


class Agent:
    """The ASGI application: ``lifespan`` runs the litewf runtime, ``http`` serves requests."""

    def __init__(self, cfg: Config) -> None:
        self.rt, self.answer = build(cfg)

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        assert scope["type"] == "http", scope["type"]
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        match scope["method"], scope["path"].strip("/").split("/"):
            case "GET", [""]:
                await respond(send, 200, PAGE.read_bytes(), "text/html; charset=utf-8")
            case "POST", ["answers"]:
                await self.start(send, body)
            case "GET", ["answers", answer_id]:
                await self.status(send, answer_id)
            case "POST", ["answers", answer_id, ("approve" | "reject") as decision]:
                await self.decide(send, answer_id, decision)
            case "GET", ["answers", answer_id, "stream"]:
                await self.stream(send, receive, answer_id, headers.get("last-event-id"))
            case method, _:
                await respond_json(send, 404, {"error": f"no route for {method} {scope['path']}"})

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Launch the runtime at startup (recovering answers a crash interrupted) and shut
        it down at exit (unfinished answers resume at the next start)."""
        await receive()  # lifespan.startup
        try:
            await self.rt.launch()
        except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await self.rt.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    async def start(self, send: Send, body: bytes) -> None:
        try:
            request = json.loads(body)
            answer_id, prompt = request["id"], request["prompt"]
        except (ValueError, TypeError, KeyError):
            await respond_json(send, 400, {"error": 'expected JSON {"id": ..., "prompt": ...}'})
            return
        if not isinstance(answer_id, str) or not ANSWER_ID.fullmatch(answer_id):
            await respond_json(send, 400, {"error": "id: 1 to 64 of A-Z a-z 0-9 _ -"})
            return
        if not isinstance(prompt, str) or not 0 < len(prompt) <= 2000:
            await respond_json(send, 400, {"error": "prompt: a string of 1 to 2000 characters"})
            return
        await self.rt.start_workflow(self.answer, prompt, workflow_id=workflow_id(answer_id))
        page = {"id": answer_id, "stream": f"/answers/{answer_id}/stream"}
        await respond_json(send, 202, page)

    async def decide(self, send: Send, answer_id: str, decision: str) -> None:
        """Send the decision to the answer's workflow (a message on topic ``decision``):
        its ``wait_first`` takes the first one; a later one stays queued, unused."""
        try:
            await self.rt.send(workflow_id(answer_id), {"by": "web"}, topic=decision)
        except (litewf.WorkflowNotFoundError, litewf.InvalidValueError):
            await respond_json(send, 404, {"error": f"no answer {answer_id!r}"})
            return
        await respond_json(send, 202, {"id": answer_id, "sent": decision})

    async def status(self, send: Send, answer_id: str) -> None:
        try:
            handle = await self.rt.retrieve_workflow(workflow_id(answer_id))
        except (litewf.WorkflowNotFoundError, litewf.InvalidValueError):
            await respond_json(send, 404, {"error": f"no answer {answer_id!r}"})
            return
        status = await handle.get_status()
        done = status.status == litewf.Status.SUCCESS
        result = await handle.get_result() if done else None
        await respond_json(send, 200, {"id": answer_id, "status": status.status, "result": result})

    async def stream(
        self, send: Send, receive: Receive, answer_id: str, last_event_id: str | None
    ) -> None:
        """The answer's tokens as SSE from the offset after ``Last-Event-ID``."""
        if last_event_id is not None and not last_event_id.strip().isdigit():
            await respond_json(send, 400, {"error": "Last-Event-ID: a stream offset (0, 1, ...)"})
            return
        offset = 0 if last_event_id is None else int(last_event_id) + 1
        try:
            await self.rt.retrieve_workflow(workflow_id(answer_id))
        except (litewf.WorkflowNotFoundError, litewf.InvalidValueError):
            await respond_json(send, 404, {"error": f"no answer {answer_id!r}"})
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def event(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        ended = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, receive, tg.cancel_scope)
            await event("retry: 1000\n\n")  # browsers reconnect after 1 s
            tokens = self.rt.read_stream(workflow_id(answer_id), TOKENS, offset)
            async for token in tokens:
                await event(f"id: {offset}\ndata: {json.dumps(token)}\n\n")
                offset += 1
            await event("event: end\ndata: {}\n\n")  # the page stops reconnecting
            ended = True
            tg.cancel_scope.cancel()
        if ended:  # else the browser left: nothing more to send
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """Stop streaming when the browser goes away."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


async def respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, body: Any) -> None:
    await respond(send, status, json.dumps(body).encode(), "application/json")


app = Agent(Config.from_env())
