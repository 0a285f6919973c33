#!/usr/bin/env python3
"""Writes the hand-written seed corpus: fuzz/corpus/<target>/seed-*.

Run from anywhere: python3 fuzz/make_seeds.py. The seeds are committed; rerunning rewrites them
identically. decode_packet seeds are single frames (raw bytes); state_machine seeds are line
scripts (see fuzz/src/script.rs).
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def nest(depth, leaf=True):
    """An object nested `depth` levels: {"n":{"n":...leaf}} (depth 1 is {"n":leaf})."""
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


def write(target, name, data):
    directory = os.path.join(HERE, "corpus", target)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


def su(object_id, **op):
    return {"type": "STATE_UPDATE", "data": {"objectId": object_id, **op}}


def multi(items):
    return {"type": "MULTI_STATE_UPDATE", "data": {"updates": items}}


def shared(patch):
    return {"type": "SHARED_STATE_UPDATE", "data": {"sharedStatePatch": patch}}


# A sharedStatePatch {"k":"xxx…"} of exactly n serialized characters.
def shared_of_size(n):
    return shared({"k": "x" * (n - len('{"k":""}'))})


# --- decode_packet: one frame each ------------------------------------------------------------

frames = {
    "heartbeat": {"type": "HEARTBEAT", "requestId": "r-1", "timestamp": 1763800000000},
    "heartbeat-ack": {"type": "HEARTBEAT_ACK"},
    "get-state": {"type": "GET_STATE", "airport": "egll", "requestId": "r-2"},
    "get-online-pilots": {"type": "GET_ONLINE_PILOTS"},
    "close": {"type": "CLOSE"},
    "state-update": {**su("SB_27L_A1", state={"on": True, "color": "red"}), "airport": "EGLL"},
    "state-bool": su("lead-on-2", state=False),
    "patch": su("SB_27L_A1", patch={"color": None, "list": [1, None], "new": {"a": 1}}),
    "delete": su("A", patch=None),
    "multi": multi([
        {"objectId": "A", "state": True},
        {"objectId": "B", "patch": {"x": 1}},
        {"objectId": "A", "patch": None},
    ]),
    "multi-200": multi([{"objectId": f"o{i}", "state": True} for i in range(200)]),
    "multi-201": multi([{"objectId": f"o{i}", "state": True} for i in range(201)]),
    "shared": shared({"runway": {"27L": {"active": True}}, "note": "é😀", "gone": None}),
    "shared-10240": shared_of_size(10240),
    "shared-10241": shared_of_size(10241),
    "stopbar": {"type": "STOPBAR_CROSSING", "data": {"objectId": "SB_27L_A1"}},
    "depth-16": su("A", state=nest(16)),
    "depth-17": su("A", patch=nest(17)),
    "unknown-type": {"type": "INITIAL_STATE", "requestId": "r-3"},
    "airport-mismatch": {"type": "HEARTBEAT", "airport": "EGKK"},
    "request-id-65": {"type": "HEARTBEAT", "requestId": "r" * 65},
    "object-id-129": su("m" * 129, state=True),
}
for name, frame in frames.items():
    write("decode_packet", name, compact(frame))
# Spellings a Value cannot carry, and bytes that are not JSON or not UTF-8.
write("decode_packet", "numbers",
      '{"type":"STATE_UPDATE","data":{"objectId":"A","state":{"v":[1e15,-0,1E+2,1e-7,'
      '123456789012345678901234567890]}}}')
write("decode_packet", "duplicate-keys",
      '{"type":"HEARTBEAT","requestId":"a","requestId":"b","type":"GET_STATE"}')
write("decode_packet", "escapes", '{"type":"HEART\\u0042EAT","requestId":"\\ud83d\\ude00"}')
write("decode_packet", "lone-surrogate", '{"type":"HEARTBEAT","requestId":"\\ud800"}')
write("decode_packet", "bad-utf8", b'{"type":"HEARTBEAT","requestId":"\xff\xfe"}')
write("decode_packet", "brackets-65", "[" * 65 + "]" * 65)
write("decode_packet", "array", '["r-4"]')
write("decode_packet", "truncated", '{"type":"STATE_UPDATE","data":{"objectId":"A","sta')

# --- state_machine: line scripts --------------------------------------------------------------


def script(*lines):
    return "#script\n" + "\n".join(lines) + "\n"


def f(who, value):
    return f"{who} {compact(value)}"


write("state_machine", "every-type", script(
    "join C0", "join P1*", "join O2",
    f("C0", {"type": "HEARTBEAT", "requestId": "r-1"}),
    f("P1", {"type": "HEARTBEAT_ACK"}),
    f("O2", {"type": "GET_STATE", "requestId": "r-2"}),
    f("O2", {"type": "GET_ONLINE_PILOTS"}),
    f("C0", su("SB_27L_A1", state={"on": True})),
    f("C0", su("SB_27L_A1", patch={"color": "red"})),
    f("C0", multi([{"objectId": "A", "state": True}, {"objectId": "SB_27L_A1", "patch": None}])),
    f("C0", shared({"runway": "27L"})),
    f("P1", {"type": "STOPBAR_CROSSING", "data": {"objectId": "SB_27L_A1"}}),
    f("O2", {"type": "CLOSE"}),
    "leave O2", "leave P1", "leave C0",
))
write("state_machine", "forbidden", script(
    "join P1", "join O2",
    f("P1", su("A", state=True)),
    f("O2", multi([{"objectId": "A", "state": True}])),
    f("P1b", shared({"a": 1})),
    f("C3", {"type": "STOPBAR_CROSSING", "data": {"objectId": "A"}}),
    f("O2", {"type": "STOPBAR_CROSSING", "data": {"objectId": "A"}}),
))
write("state_machine", "multi-boundaries", script(
    "join C0",
    f("C0", multi([{"objectId": f"o{i}", "state": True} for i in range(200)])),
    f("C0", multi([{"objectId": f"o{i}", "state": False} for i in range(201)])),
    f("C0", multi([])),
    f("C0", multi([{"objectId": "A", "state": True}, {"objectId": "bad id", "state": True}])),
))
write("state_machine", "depths", script(
    "join C0",
    f("C0", su("A", state=nest(16))),
    f("C0", su("A", state=nest(17))),
    f("C0", su("A", patch=nest(16))),
    f("C0", su("A", patch=nest(17))),
    f("C0", shared(nest(16))),
    f("C0", shared(nest(17))),
    f("C0", multi([{"objectId": "B", "state": True}, {"objectId": "C", "state": nest(17)}])),
))
write("state_machine", "patch-semantics", script(
    "join C0",
    f("C0", su("A", state=True)),
    f("C0", su("A", patch={"on": True, "n": {"x": 1, "y": None}})),
    f("C0", su("A", patch={"n": None})),
    f("C0", su("missing", patch=None)),
    f("C0", multi([{"objectId": "T", "state": True}, {"objectId": "T", "patch": None}])),
    f("C0", multi([{"objectId": "A", "patch": None}, {"objectId": "A", "patch": {"back": 1}}])),
    f("C0", shared({"a": {"b": 1, "c": [1, None]}})),
    f("C0", shared({"a": {"b": None}, "a2": None})),
    f("C0", shared({})),
))
write("state_machine", "object-limit", script(
    "prefill near-objects", "join C0",
    f("C0", multi([{"objectId": f"new{i}", "state": True} for i in range(6)])),
    f("C0", multi([{"objectId": f"new{i}", "state": True} for i in range(5)])),
    f("C0", su("one-more", state=True)),
    f("C0", multi([{"objectId": "p0", "patch": None}, {"objectId": "one-more", "state": True}])),
))
write("state_machine", "shared-limit", script(
    "prefill near-shared", "join C0",
    f("C0", shared_of_size(10240)),
    f("C0", shared_of_size(4000)),
    f("C0", shared({"k": None})),
    f("C0", shared({"s0": None})),
    f("C0", shared_of_size(10241)),
))
# 1e15 is 4 characters in a packet and 18 ("1000000000000000.0") once serialized: patches can
# approach MAX_OBJECT_STATE_CHARS (50,000) with a small seed.
write("state_machine", "object-size", script(
    "join C0",
    'C0 {"type":"STATE_UPDATE","data":{"objectId":"A","patch":{"v":[' + ",".join(["1e15"] * 2600)
    + "]}}}",
    f("C0", su("A", patch={"w": "x" * 600})),
    f("C0", su("A", patch={"v": None})),
))
write("state_machine", "offline-clearing", script(
    "join C0", "join C0",
    f("C0", su("A", state=True)),
    "leave C0", "wait 1000", "leave C0", "wait 119000", "alarm", "wait 1001", "alarm",
    "join C1", f("C1", shared({"a": 1})), "leave C1", "join C1", "wait 200000", "alarm",
))
write("state_machine", "wake", script(
    "join C0", "join P1*", "join O2",
    f("C0", su("A", state=True)), f("C0", shared({"a": 1})),
    "wake", f("P1", {"type": "GET_STATE"}), "wait 40000", "wake",
    f("C0", su("B", state=False)), "wait 80000", "alarm", "wake",
    "leave C0", "wake", "wait 120001", "alarm", "join C3", "wake", "wait 200000", "alarm",
))
write("state_machine", "rate-limit", script(
    "limit default", "join C0",
    *[f("C0", {"type": "HEARTBEAT"}) for _ in range(64)],
    'C0 ["r-1"]',
    *[f("C0", su("A", state=True)) for _ in range(100)],
    "wait 10000",
    f("C0", su("A", state=True)),
))
write("state_machine", "request-ids", script(
    "join O0",
    f("O0", {"type": "HEARTBEAT", "requestId": "r" * 64}),
    f("O0", {"type": "HEARTBEAT", "requestId": "é" * 64}),
    f("O0", {"type": "HEARTBEAT", "requestId": "r" * 65}),
    f("O0", {"type": "GET_STATE", "requestId": 17}),
    f("O0", {"type": "NOPE", "requestId": "r-1"}),
    f("O0", {"type": "HEARTBEAT", "airport": "EGKK", "requestId": "r-2"}),
))
write("state_machine", "bad-bytes", script(
    "join C0",
    "C0x " + b'{"type":"HEARTBEAT","requestId":"\xff"}'.hex(),
    "C0x " + b'{"type":"STATE_UPDATE","data":{"objectId":"A","state":true}}'.hex(),
    "C0 " + "[" * 70 + "]" * 70,
    "C0 {\"type\":\"STATE_UPDATE\",\"data\":{\"objectId\":\"A\",\"state\":{\"v\":[1e15,-0,1E+2]}}}",
    "C0 not json",
))
