"""A python3 client of the Go Listener in main.go.

main.go runs it for you; to run it by hand against a Go program that
listens (multiproc.Listen), give the address and the authkey:

    python3 client.py /tmp/demo.sock secret      # a unix socket path
    python3 client.py @demo secret               # an abstract unix name
    python3 client.py 127.0.0.1:6000 secret      # TCP
"""
import sys
from multiprocessing.connection import Client


def address(s):
    if s.startswith('@'):
        return '\0' + s[1:]          # Linux's abstract namespace
    if not s.startswith('/') and ':' in s:
        host, port = s.rsplit(':', 1)
        return (host, int(port))
    return s


with Client(address(sys.argv[1]), authkey=sys.argv[2].encode()) as conn:
    conn.send({'op': 'stats', 'values': [3, 1, 4, 1, 5, 9, 2, 6]})
    print('python got:', conn.recv())
    conn.send({'op': 'square', 'values': (2**70, 7)})
    print('python got:', conn.recv())
    conn.send({'op': 'raw-next'})
    conn.send_bytes(b'raw bytes need no pickle')
    print('python got:', conn.recv_bytes())
    conn.send(None)                  # goodbye
