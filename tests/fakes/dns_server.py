"""A tiny authoritative DNS server on 127.0.0.1 (UDP), made with dnspython's own message code: it answers
TXT and CNAME questions from a dict, follows a CNAME to a TXT record in the same answer as a real server
would, and says NXDOMAIN for any other name.

    with FakeDns({"example.org": ["v=spf1 include:sendgrid.net ~all"],
                  "s1._domainkey.example.org": ("CNAME", "s1.domainkey.u1.wl.sendgrid.net")}) as dns_server:
        ...  # digest doctor --nameserver 127.0.0.1:{dns_server.port}
"""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Records = dict[str, "list[str] | tuple[str, str]"]  # name -> TXT strings, or ("CNAME", target)


def _txt(text: str) -> str:
    """A TXT string in zone-file form: quoted, split in 255-byte pieces as DNS requires."""
    pieces = [text[i : i + 255] for i in range(0, len(text), 255)] or [""]
    return " ".join('"' + piece.replace("\\", "\\\\").replace('"', '\\"') + '"' for piece in pieces)


class FakeDns:
    def __init__(self, records: Records):
        self.records = {name.lower().rstrip("."): value for name, value in records.items()}
        self.questions: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    def __enter__(self) -> FakeDns:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self._sock.sendto(self.answer(dns.message.from_wire(data)).to_wire(), peer)

    def answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.questions.append(name)
        for _ in range(8):  # a CNAME chain, as far as this server holds it
            value = self.records.get(name)
            if value is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            if isinstance(value, tuple):
                target = value[1].rstrip(".")
                response.answer.append(
                    dns.rrset.from_text(name + ".", 300, dns.rdataclass.IN, dns.rdatatype.CNAME, target + ".")
                )
                name = target.lower()
                continue
            if question.rdtype == dns.rdatatype.TXT and value:
                response.answer.append(
                    dns.rrset.from_text_list(
                        name + ".", 300, dns.rdataclass.IN, dns.rdatatype.TXT, [_txt(v) for v in value]
                    )
                )
            return response
        return response
