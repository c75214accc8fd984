"""ember-serve's example (crates/ember-serve/examples/serve.rs: an axum application that
serves the test model through `ember_serve::router`, beside a route of its own), answered by
OpenAI's own Python client (issue 34): the model list, a chat completion (whole and
streamed, with usage), a completion, embeddings (base64, as the client asks by default, and
float), and an error in OpenAI's shape; the application's own
route answers beside them.

Usage: python serve_example.py EXAMPLE_BINARY MODEL PORT
Prints what it checks; exits non-zero on the first failure.
"""

import struct
import sys
import urllib.request

import openai

from served import served

binary, model, port = sys.argv[1:4]
base = f"http://127.0.0.1:{port}"


with served([binary, model, f"127.0.0.1:{port}"], base, "serve_example"):
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=120)

    models = client.models.list().data
    assert len(models) == 1 and models[0].owned_by == "ember-serve", models
    name = models[0].id
    print(f"serve_example: models.list: {name!r}, owned by {models[0].owned_by}")

    chat = client.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24,
        temperature=0,
    )
    text = chat.choices[0].message.content
    assert chat.object == "chat.completion" and text, chat
    assert chat.usage.completion_tokens > 0 and chat.usage.prompt_tokens > 0, chat.usage
    print(f"serve_example: chat.completions: {text!r} ({chat.usage.completion_tokens} tokens)")

    stream = client.chat.completions.create(
        model=name,
        messages=[{"role": "user", "content": "Name three colours."}],
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    # Greedy: the stream gives the same text as the whole answer.
    assert "".join(pieces) == text, (pieces, text)
    assert usage and usage.completion_tokens == chat.usage.completion_tokens, usage
    print(f"serve_example: streamed: the same text in {len(pieces)} chunks, usage {usage.completion_tokens} tokens")

    completion = client.completions.create(model=name, prompt="def fibonacci(n):", max_tokens=16, temperature=0)
    assert completion.choices[0].text, completion
    print(f"serve_example: completions: {completion.choices[0].text!r}")

    # OpenAI's client asks for base64 unless told otherwise, and decodes it.
    texts = ["a red apple", "a green pear"]
    b64 = client.embeddings.create(model=name, input=texts).data
    floats = client.embeddings.create(model=name, input=texts, encoding_format="float").data
    assert len(b64) == 2 and all(len(e.embedding) > 0 for e in b64), b64
    # The same f32 values (JSON's shortest decimal of an f32, read as a double, rounds back).
    as_f32 = lambda v: list(struct.unpack(f"{len(v)}f", struct.pack(f"{len(v)}f", *v)))
    assert [as_f32(e.embedding) for e in b64] == [as_f32(e.embedding) for e in floats], "base64 and float differ"
    norm = sum(x * x for x in b64[0].embedding) ** 0.5
    assert abs(norm - 1) < 1e-3, norm
    print(f"serve_example: embeddings: {len(b64[0].embedding)} dimensions, base64 (the client's default) = float")

    try:
        client.chat.completions.create(model=name, messages=[], max_tokens=4)
        sys.exit("serve_example: an empty message list was accepted")
    except openai.BadRequestError as e:
        assert e.body and e.body.get("type") == "invalid_request_error", e.body
        print(f"serve_example: an empty chat is refused: 400 {e.body.get('message')!r}")

    with urllib.request.urlopen(f"{base}/hello", timeout=10) as r:
        assert r.read().decode().startswith("hello from the application"), "the app's own route"
    print("serve_example: the application's own /hello answers beside the model's routes")
    print("serve_example: ok")
