"""`rps-chat-completions`: lm-eval's `local-chat-completions` as the arc_prog tasks need it.

lm-eval's own backend raises when a request still fails after its `max_retries` tries, and the
whole run dies with it (its last words a misleading "Session is closed"), writing nothing; and it
returns text only, so whether an answer was cut at the token limit is unknown. This subclass
keeps lm-eval's requests, payloads, concurrency and parsing, and changes two things:
- a request that still fails after `max_retries` tries (in all, lm-eval's meaning) is answered
  with a FailedRequest: an empty text that carries the HTTP status and the server's message, which
  the arc_prog tasks score as that attempt's api_error; the run goes on. A 429's Retry-After is
  honoured (at most RETRY_AFTER_CAP_S); other waits are lm-eval's (0.5 * 2^n s, 1 to 10 s).
- every text is a Completion: a str that also carries the server's finish_reason, which the tasks
  read as the stop reason ("length": the token limit), so no tokenizer is needed for it.

Registered when this module is imported: `python -m rps_evals.lmeval run --model
rps-chat-completions ...` (lm-eval's CLI with this model and the tasks' --include_path), or
`import rps_evals.lmeval.model` before `lm_eval.simple_evaluate(model="rps-chat-completions", ...)`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time

from lm_eval.api.registry import register_model
from lm_eval.models.openai_completions import LocalChatCompletion

log = logging.getLogger(__name__)

MODEL_NAME = "rps-chat-completions"
SERVER_MESSAGE_CHARS = 500  # how much of the server's error text a record keeps (as in Inspect's)
RETRY_AFTER_CAP_S = 60.0


class Completion(str):
    """An answer's text with the server's finish_reason ("stop", "length", ... or None)."""

    finish_reason: str | None = None

    def __new__(cls, text: str, finish_reason: str | None = None) -> Completion:
        obj = super().__new__(cls, text)
        obj.finish_reason = finish_reason
        return obj


class FailedRequest(str):
    """A request that failed after every try: empty text, with why (`api_error`)."""

    api_error: str = ""

    def __new__(cls, api_error: str) -> FailedRequest:
        obj = super().__new__(cls, "")
        obj.api_error = api_error
        return obj


class _Failure(Exception):
    """One failed try: what the record will say, and how long the server asked us to wait."""

    def __init__(self, what: str, detail: str, retry_after: float | None = None):
        super().__init__(f"{what}: {detail}")
        self.what, self.detail, self.retry_after = what, detail, retry_after


def _status_failure(status: int, reason: str | None, body: str, retry_after: str | None) -> _Failure:
    text = " ".join((body or "").split())
    if len(text) > SERVER_MESSAGE_CHARS:
        text = text[:SERVER_MESSAGE_CHARS] + "..."
    try:
        wait = min(float(retry_after), RETRY_AFTER_CAP_S) if retry_after else None
    except ValueError:
        wait = None
    return _Failure(f"HTTP {status} {reason or ''}".rstrip(), text, wait)


def _wait_s(failure: _Failure, tries_done: int) -> float:
    """lm-eval's own backoff (tenacity's wait_exponential(multiplier=0.5, min=1, max=10)), or Retry-After."""
    if failure.retry_after is not None:
        return failure.retry_after
    return min(max(0.5 * 2 ** tries_done, 1.0), 10.0)


@register_model(MODEL_NAME)
class RpsChatCompletions(LocalChatCompletion):
    """local-chat-completions whose failed requests are counted attempts, with finish reasons."""

    def parse_generations(self, outputs: dict | list[dict], **kwargs) -> list[str]:
        if isinstance(outputs, FailedRequest):  # the synchronous path's failed request (model_call)
            return [outputs]
        texts = super().parse_generations(outputs, **kwargs)
        reasons: list[str | None] = []
        for out in outputs if isinstance(outputs, list) else [outputs]:
            choices = out.get("choices") if isinstance(out, dict) else None
            if not isinstance(choices, list) or not choices:
                reasons.append(None)
                continue
            by_index = {c.get("index", i): c.get("finish_reason") for i, c in enumerate(choices) if isinstance(c, dict)}
            reasons += [by_index.get(i) for i in range(len(choices))]
        return [text if text is None else Completion(text, reasons[i] if i < len(reasons) else None)
                for i, text in enumerate(texts)]

    def _payload(self, messages, generate: bool, gen_kwargs: dict | None, **kwargs) -> dict:
        return self._create_payload(self.create_message(messages), generate=generate,
                                    gen_kwargs=copy.deepcopy(gen_kwargs), seed=self._seed, **kwargs)

    def model_call(self, messages, *, generate: bool = True, gen_kwargs: dict | None = None, **kwargs):
        """The num_concurrent=1 path: every try here (lm-eval's retry wrapper then sees no error)."""
        import requests

        payload = self._payload(messages, generate, gen_kwargs, **kwargs)
        tries = max(int(self.max_retries), 1)
        for done in range(1, tries + 1):
            try:
                response = requests.post(self.base_url, json=payload, headers=self.header,
                                         verify=self.verify_certificate, timeout=self.timeout)
                if not response.ok:
                    raise _status_failure(response.status_code, response.reason, response.text,
                                          response.headers.get("Retry-After"))
                return response.json()
            except (_Failure, requests.RequestException, ValueError) as exc:
                failure = exc if isinstance(exc, _Failure) else _Failure(type(exc).__name__, str(exc))
                if done == tries:
                    return self._give_up(failure, done)
                log.warning("request failed (%s); try %d of %d", failure, done + 1, tries)
                time.sleep(_wait_s(failure, done))

    async def amodel_call(self, session, sem, messages, *, generate: bool = True, cache_keys=None,
                          ctxlens=None, gen_kwargs: dict | None = None, **kwargs):
        """The concurrent path: every try here, the answers as lm-eval's own amodel_call gives them."""
        import aiohttp

        payload = self._payload(messages, generate, gen_kwargs, **kwargs)
        tries = max(int(self.max_retries), 1)
        outputs = None
        for done in range(1, tries + 1):
            try:
                async with sem, session.post(self.base_url, json=payload, headers=self.header) as response:
                    body = await response.text()
                    if not response.ok:
                        raise _status_failure(response.status, response.reason, body,
                                              response.headers.get("Retry-After"))
                    outputs = json.loads(body)
                break
            except (_Failure, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                failure = exc if isinstance(exc, _Failure) else _Failure(type(exc).__name__, str(exc))
                if done == tries:
                    return [self._give_up(failure, done)] * len(messages)
                log.warning("request failed (%s); try %d of %d", failure, done + 1, tries)
                await asyncio.sleep(_wait_s(failure, done))
        if not generate:
            return self.parse_logprobs(outputs=outputs, tokens=messages, ctxlens=ctxlens)
        from lm_eval.models.api_models import LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER

        answers = [LMEVAL_MODEL_NONE_ANSWER_PLACEHOLDER if a is None else a for a in self.parse_generations(outputs)]
        for answer, key in zip(answers, cache_keys or [], strict=False):
            self.cache_hook.add_partial("generate_until", key, answer)
        return answers

    @staticmethod
    def _give_up(failure: _Failure, tries: int) -> FailedRequest:
        message = f"{failure.what} after {tries} tries: {failure.detail}" if tries > 1 else str(failure)
        log.error("request failed after %d tries, counted as an api_error: %s", tries, message)
        return FailedRequest(message)


def register() -> str:
    """Importing this module registered the model; its name, for `--model`."""
    return MODEL_NAME
