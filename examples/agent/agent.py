"""The agent workflow: a fake model writes its answer to a stream, token by token.

The model is a step (a call to the outside world), and it writes each token with
``rt.write_stream`` as it comes, so a reader sees the answer grow. If the process dies
mid-answer, the step runs again on restart; litewf skips the writes the first run already
made (a step's n-th write is stored once), so a reader that resumes at its next offset sees
every token exactly once, in order, provided the model says the same thing again (this fake
model always does; a real one would be asked with a fixed seed, or its output cached).

A person then approves or rejects the draft (``wait_first`` on two message topics, with a
deadline that survives restarts); the stream says so with ``{"status": ...}`` values
between and after the tokens, and ends when the workflow closes it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import anyio

import litewf

#: The stream the answer's tokens are written to.
TOKENS = "tokens"

ANSWER = (
    "You asked: {prompt} Here is a considered answer, produced one word at a time by a "
    "model that never touches the network. Each word is written to a durable stream as it "
    "is generated, so a browser can show it at once, and a reader that loses its connection "
    "picks up exactly where it left off, even if the server was killed in between."
)


#: What the stream says while the draft waits for a person, and after the decision.
AWAITING = "awaiting approval"
VERDICTS = {"approve": "approved", "reject": "rejected"}


@dataclass(frozen=True)
class Config:
    db_path: str = "agent.db"
    delay: float = 0.05  # seconds the fake model "thinks" before each word
    approval_timeout: float = 600.0  # how long a draft waits for a person's decision

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ.get
        return cls(
            db_path=env("AGENT_DB", cls.db_path),
            delay=float(env("AGENT_DELAY", cls.delay)),
            approval_timeout=float(env("AGENT_APPROVAL_TIMEOUT", cls.approval_timeout)),
        )


def workflow_id(answer_id: str) -> str:
    """One workflow per answer: asking again with the same ID returns the same run."""
    return f"answer-{answer_id}"


def fake_model(prompt: str) -> list[str]:
    """The model's output for ``prompt``: the same tokens every time (words with their
    trailing space, so that joining them gives the text)."""
    words = ANSWER.format(prompt=" ".join(prompt.split())).split()
    return [f"{word} " for word in words[:-1]] + words[-1:]


def build(cfg: Config) -> tuple[litewf.Runtime, litewf.Workflow[[str], str]]:
    """The runtime with the answer workflow and its model step registered on it."""
    rt = litewf.Runtime(cfg.db_path)

    @rt.step(name="agent.generate")
    async def generate(prompt: str) -> int:
        """Run the model, streaming each token as it comes; the number of tokens."""
        tokens = fake_model(prompt)
        for token in tokens:
            await anyio.sleep(cfg.delay)  # the model thinks
            await rt.write_stream(TOKENS, token)
        return len(tokens)

    @rt.workflow(name="agent.answer")
    async def answer(prompt: str) -> str:
        await generate(prompt)
        # The gate: a person approves the draft before it counts (in a real agent: before
        # the email is sent, the change merged, ...). Only the winning message is taken.
        await rt.write_stream(TOKENS, {"status": AWAITING})
        got = await rt.wait_first(
            approve=rt.message("approve"),
            reject=rt.message("reject"),
            timeout=cfg.approval_timeout,
        )
        verdict = "expired" if got is None else VERDICTS[got.name]
        await rt.write_stream(TOKENS, {"status": verdict})
        await rt.close_stream(TOKENS)  # readers end after the verdict
        return verdict

    return rt, answer
