#!/usr/bin/env python3
"""A Corral worker in plain Python, without any library: newline-delimited
JSON over the socket that corrald names in the environment.

It sends `connected`, emits metadata.count (default 3) `greeting` events,
then one that breaks the schema to show an error reply, and disconnects.
Every line carries an id, so the node answers each with an ack or an error.
"""
import json, os, socket, sys, time

PROCESS_ID = os.environ["DONKEYLABS_PROCESS_ID"]
META = json.loads(os.environ.get("DONKEYLABS_METADATA") or "{}")
if os.environ.get("DONKEYLABS_SOCKET_PATH"):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(os.environ["DONKEYLABS_SOCKET_PATH"])
else:
    sock = socket.create_connection(("127.0.0.1", int(os.environ["DONKEYLABS_TCP_PORT"])))
conn = sock.makefile("rw", encoding="utf-8", newline="\n")
last_id = 0


def send(kind, **fields):
    """Send one line with a new id; return the node's ack or error for it."""
    global last_id
    last_id += 1
    line = {"type": kind, "processId": PROCESS_ID, "timestamp": int(time.time() * 1000), "id": last_id, **fields}
    conn.write(json.dumps(line) + "\n")
    conn.flush()
    while True:
        answer = conn.readline()
        if not answer:
            sys.exit("the node closed the connection")
        answer = json.loads(answer)
        if answer.get("type") in ("ack", "error") and answer.get("id") == last_id:
            return answer
        print("the node says", answer, flush=True)  # e.g. corralctl send


send("connected")
for i in range(1, int(META.get("count", 3)) + 1):
    send("event", event="greeting", data={"message": f"hello #{i} from python", "n": i})
refused = send("event", event="greeting", data={"message": 42})
print("refused:", refused.get("code"), refused.get("message"), flush=True)

# Say goodbye (no id, so no answer), then wait for the node to close its side.
conn.write(json.dumps({"type": "disconnecting", "processId": PROCESS_ID, "timestamp": int(time.time() * 1000)}) + "\n")
conn.flush()
sock.shutdown(socket.SHUT_WR)
while conn.readline():
    pass
print("done", flush=True)
