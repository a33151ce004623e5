"""A python3 Listener for the Go client in main.go (multiproc.Dial).

    python3 server.py secret

prints the address it listens on (host:port), serves one client: every
object it receives comes back as {'echo': obj, 'type': its python type}.
"""
import sys
from multiprocessing.connection import Listener

with Listener(('127.0.0.1', 0), authkey=sys.argv[1].encode()) as listener:
    print('%s:%d' % listener.address, flush=True)
    with listener.accept() as conn:
        while True:
            obj = conn.recv()
            if obj is None:
                break
            conn.send({'echo': obj, 'type': type(obj).__name__})
