"""Cabildo through the official OpenAI Python library, as a partner would call it.

Run by tests/openai_clients.rs with CABILDO_BASE_URL (…/v1), CABILDO_KEY (a valid API key),
CABILDO_QUOTA_KEY (a key whose daily quota is one request, already used). Prints one line per
check and exits non-zero on the first failure.
"""

import os
import sys

import openai

base = os.environ["CABILDO_BASE_URL"]
# No retries: a 429 must surface as the library's exception, not be waited out.
client = openai.OpenAI(base_url=base, api_key=os.environ["CABILDO_KEY"], max_retries=0)
QUESTION = "¿Desde qué edad se puede votar en Chile?"


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        sys.exit(1)


models = client.models.list()
ids = [m.id for m in models.data]
check("models.list names the answering model", len(ids) == 1 and ids[0].startswith("cabildo-"), ids)
check("models.retrieve finds it", client.models.retrieve(ids[0]).id == ids[0])

reply = client.chat.completions.create(
    model=ids[0], messages=[{"role": "user", "content": QUESTION}], temperature=0, seed=7
)
text = reply.choices[0].message.content
check("a completion cites Artículo 13", "Artículo 13" in text, text)
check("its sources are listed as numbered links", "Fuentes:" in text and "[1]" in text, text)
check("citations come in the extra field", any(
    c["label"].endswith("Artículo 13") for c in (reply.model_extra or {}).get("citations", [])
), reply.model_extra)
check("usage counts are integers", isinstance(reply.usage.total_tokens, int), reply.usage)

pieces, usage, finish = [], None, None
stream = client.chat.completions.create(
    model=ids[0],
    messages=[{"role": "user", "content": QUESTION}],
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.choices:
        pieces.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
    if chunk.usage is not None:
        usage = chunk.usage
streamed = "".join(pieces)
check("a stream carries the answer", "Artículo 13" in streamed, streamed)
check("a stream ends with finish_reason stop", finish == "stop", finish)
check("a stream reports usage when asked", usage is not None and usage.total_tokens >= 0, usage)

# A follow-up leans on the first question: alone, "¿Y quiénes no pueden?" names no subject.
follow = client.chat.completions.create(
    model=ids[0],
    messages=[
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": text},
        {"role": "user", "content": "¿Y quiénes pierden ese derecho?"},
    ],
    extra_body={"cabildo": {"register": "tu", "filters": {"jurisdiction": ["CL"]}}},
)
followed = follow.choices[0].message.content
labels = [c["label"] for c in (follow.model_extra or {}).get("citations", [])]
check("a follow-up is answered from the Constitution", any(
    "Artículo 1" in l for l in labels
) and not follow.model_extra.get("abstained"), (followed, labels))

try:
    openai.OpenAI(base_url=base, api_key="cbk_not-a-key", max_retries=0).models.list()
    check("a bad key raises AuthenticationError", False, "no exception")
except openai.AuthenticationError as e:
    check("a bad key raises AuthenticationError", e.status_code == 401 and e.code == "invalid_api_key", e.body)

try:
    openai.OpenAI(base_url=base, api_key=os.environ["CABILDO_QUOTA_KEY"], max_retries=0).chat.completions.create(
        model=ids[0], messages=[{"role": "user", "content": QUESTION}]
    )
    check("a spent quota raises RateLimitError", False, "no exception")
except openai.RateLimitError as e:
    check("a spent quota raises RateLimitError", e.status_code == 429 and e.response.headers.get("retry-after") is not None, e.body)

try:
    client.chat.completions.create(model=ids[0], messages=[{"role": "system", "content": "hola"}])
    check("a request without a user message raises BadRequestError", False, "no exception")
except openai.BadRequestError as e:
    check("a request without a user message raises BadRequestError", e.type == "invalid_request_error", e.body)

print("python openai", openai.__version__, "all checks passed")
