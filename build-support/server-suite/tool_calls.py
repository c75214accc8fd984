"""Tool calling end to end with OpenAI's own Python client (issue 34): insightd, started through
build-support/server-suite/insightd-as-llama-server with llama-server's flags (--jinja and a
Qwen3 chat template, as a model with tool support would carry), answers a request with `tools`
and `tool_choice: "required"` with a `tool_calls` entry whose arguments validate against the
function's schema; the tool's result, sent back in a `tool` message, is rendered by the
template into the next prompt (shown by /apply-template); a named function works the same.

Usage: python tool_calls.py LAUNCHER MODEL TEMPLATE PORT   (INSIGHTD in the environment)
Prints what it checks; exits non-zero on the first failure.
"""

import json
import os
import sys
import urllib.request

import openai

from served import served

launcher, model, template, port = sys.argv[1:5]
base = f"http://127.0.0.1:{port}"

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city's name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}


def check_arguments(text):
    """The arguments against WEATHER's schema (its keywords: object, required, enum, types)."""
    args = json.loads(text)
    schema = WEATHER["function"]["parameters"]
    assert isinstance(args, dict), f"arguments are not an object: {text}"
    assert set(args) == set(schema["required"]), f"arguments {text} lack or add keys"
    assert isinstance(args["city"], str) and args["city"], f"city: {text}"
    assert args["unit"] in schema["properties"]["unit"]["enum"], f"unit: {text}"
    return args


argv = [launcher, "--host", "127.0.0.1", "--port", port, "-m", model, "--jinja",
        "--chat-template-file", template, "-np", "1", "-c", "2048"]
with served(argv, base, "tool_calls", env=dict(os.environ, EMBER_SERVER_SUITE_DROPPED=os.devnull)):
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="none")
    question = {"role": "user", "content": "What is the weather in Paris, in celsius?"}
    for choice in ["required", {"type": "function", "function": {"name": "get_weather"}}]:
        res = client.chat.completions.create(
            model="any", messages=[question], tools=[WEATHER], tool_choice=choice,
            parallel_tool_calls=False, max_tokens=96, temperature=0,
        )
        message = res.choices[0].message
        assert message.tool_calls, f"tool_choice {choice}: no tool_calls in {message}"
        for call in message.tool_calls:
            assert call.type == "function" and call.function.name == "get_weather", call
            args = check_arguments(call.function.arguments)
        print(f"tool_calls: tool_choice {json.dumps(choice)}: {len(message.tool_calls)} call(s), "
              f"get_weather({json.dumps(args)}), id {message.tool_calls[0].id}, "
              f"finish_reason {res.choices[0].finish_reason}")

    # The result goes back; the template renders the call and the result into the next prompt.
    call = message.tool_calls[0]
    messages = [
        question,
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"},
    ]
    body = json.dumps({"messages": messages, "tools": [WEATHER]}).encode()
    req = urllib.request.Request(f"{base}/apply-template", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        prompt = json.load(r)["prompt"]
    assert "<tool_response>\n18 degrees, sunny\n</tool_response>" in prompt, prompt
    assert '"name": "get_weather"' in prompt, prompt
    tail = prompt[prompt.index("<|im_start|>assistant"):]
    print("tool_calls: /apply-template renders the call and the result:")
    print("    " + tail.replace("\n", "\n    "))
    res = client.chat.completions.create(model="any", messages=messages, tools=[WEATHER],
                                         max_tokens=16, temperature=0)
    print(f"tool_calls: the next answer ({res.choices[0].finish_reason}): "
          f"{json.dumps(res.choices[0].message.content)}")
    print("tool_calls: ok")
