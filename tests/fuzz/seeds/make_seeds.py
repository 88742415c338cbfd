#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (except jwt and jwks: `cargo run --example
jwt_seeds` makes those, since they need fresh signatures). Run from tests/fuzz; the output is
committed, so this only runs again when a seed changes. A few valid and invalid inputs each:
AFL needs only a foothold in each format."""

import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def write(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return f.read()


# http_head: byte 0 = builder (bits 0-1) and write size (bits 2-7), then the client's bytes.
AUTO, H1, H2 = 0, 1, 2


def http(name, ctl, data):
    write("http_head", name, bytes([ctl]) + data)


http("get", AUTO, b"GET / HTTP/1.1\r\nHost: api.example\r\n\r\n")
http("post-cl", H1 | (5 << 2),
     b"POST /orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
     b"Content-Length: 11\r\n\r\n{\"qty\": 1}\n")
http("pipelined-chunked", AUTO | (1 << 2),
     b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"
     b"GET /b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
http("smuggle-cl-te", H1,
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n")
http("repeated-cl", H1 | (3 << 2),
     b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok")
http("upgrade", AUTO,
     b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
http("http10-keepalive", H1,
     b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /x HTTP/1.0\r\n\r\n")
http("expect-100", H1,
     b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
http("garbage", AUTO, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)))


def h2_frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = h2_frame(4, 0, 0, struct.pack(">HI", 3, 100) + struct.pack(">HI", 4, 65535))
SETTINGS_ACK = h2_frame(4, 1, 0, b"")
# HPACK: :method GET (0x82), :scheme http (0x86), :path / (0x84), :authority "a" (0x41 literal).
GET_HEADERS = b"\x82\x86\x84\x41\x01a"
# :method POST (0x83), :path literal "/orders", content-type literal.
POST_HEADERS = b"\x83\x86\x44\x07/orders\x41\x01a\x5f\x10application/json"
http("h2-get", H2, PREFACE + SETTINGS + SETTINGS_ACK + h2_frame(1, 0x5, 1, GET_HEADERS))
http("h2-prior-knowledge", AUTO, PREFACE + SETTINGS + h2_frame(1, 0x5, 1, GET_HEADERS)
     + h2_frame(1, 0x5, 3, GET_HEADERS))
http("h2-post-data", H2 | (9 << 2), PREFACE + SETTINGS + h2_frame(1, 0x4, 1, POST_HEADERS)
     + h2_frame(0, 0x0, 1, b"{\"qty\":") + h2_frame(0, 0x1, 1, b" 1}")
     + h2_frame(8, 0, 0, struct.pack(">I", 1000)))
http("h2-rst-ping-goaway", H2, PREFACE + SETTINGS + h2_frame(1, 0x5, 1, GET_HEADERS)
     + h2_frame(3, 0, 1, struct.pack(">I", 8)) + h2_frame(6, 0, 0, b"12345678")
     + h2_frame(7, 0, 0, struct.pack(">II", 1, 0)))

# json_schema: the order schema's body (valid), and the ways a body goes wrong.
order = {
    "id": "2eb8aa08-aa98-11ea-b4aa-73b441d16380",
    "created": "2026-11-23T14:39:00.123Z",
    "status": "paid",
    "customer": {"id": 1234, "email": "jane.doe@example.com", "name": "Jane Doe", "vip": False},
    "shipping": {"street": "1 Main Street", "city": "Springfield", "postal": "AB1 2CD",
                 "country": "GB"},
    "tags": ["express", "gift-wrap", "b2c"],
    "note": "Leave the parcel at the back door, please.",
    "items": [{"sku": "ABC-000123", "qty": 2, "price": 9.99},
              {"sku": "XYZ-999999", "qty": 1, "price": 0.5, "gift": True,
               "options": {"wrap": "blue paper"}}],
}
write("json_schema", "valid-order.json", json.dumps(order))
bad = json.loads(json.dumps(order))
bad["items"][0]["qty"] = 0
bad["tags"].append("express")
bad["customer"]["email"] = "not-an-email"
write("json_schema", "invalid-order.json", json.dumps(bad))
write("json_schema", "duplicate-key.json", '{"id": "a", "id": "b", "items": []}')
write("json_schema", "escapes-and-numbers.json",
      '{"note": "\\u00e9\\ud83d\\ude00\\n", "items": [{"sku": "ABC-000001", "qty": 1e2, '
      '"price": -0.0}], "customer": {"id": 18446744073709551615}}')
write("json_schema", "deep.json", "[" * 70 + "]" * 70)
write("json_schema", "truncated.json", json.dumps(order)[:120])

# openapi: descriptions, valid and not.
write("openapi", "demo.yaml", read("../../config/openapi.yaml"))
write("openapi", "orders-api.yaml", read("fixtures/orders-api.yaml"))
write("openapi", "petstore-31.json", json.dumps({
    "openapi": "3.1.0",
    "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "https://{env}.example.com/v{ver}",
                 "variables": {"env": {"default": "api", "enum": ["api", "staging"]},
                               "ver": {"default": "1"}}}],
    "security": [{"bearer": ["pets:read"]}],
    "paths": {
        "/pets/{name}.{ext}": {"get": {"parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "ext", "in": "path", "required": True, "schema": {"enum": ["json"]}}],
            "responses": {"200": {"description": "ok"}}}},
        "/pets": {"post": {"x-vigil": {"mode": "log-only"},
                           "requestBody": {"required": True, "content": {"application/json": {
                               "schema": {"$ref": "#/components/schemas/Pet"}}}},
                           "responses": {"201": {"description": "created"}}}},
    },
    "components": {
        "schemas": {"Pet": {"type": "object", "required": ["name"],
                            "properties": {"name": {"type": ["string", "null"]},
                                           "tags": {"type": "array",
                                                    "prefixItems": [{"const": "a"}]}}}},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}))
write("openapi", "swagger2.yaml", "swagger: '2.0'\ninfo: {title: x, version: '1'}\npaths: {}\n")
write("openapi", "bad-ref.yaml",
      "openapi: 3.0.0\ninfo: {title: x, version: '1'}\npaths:\n  /a:\n    post:\n"
      "      requestBody: {content: {application/json: {schema: {$ref: '#/nope'}}}}\n"
      "      responses: {'200': {description: ok}}\n")
write("openapi", "yaml-anchors.yaml",
      "openapi: 3.0.0\ninfo: &i {title: x, version: '1'}\npaths:\n  /a: &p\n    get:\n"
      "      responses: {'200': {description: ok}}\n  /b: *p\nx-copy: *i\n")

# policy_request: method, target, headers, blank line, body (see vigil_fuzz::RawRequest).
write("policy_request", "list-orders",
      "GET\n/v1/orders?limit=10&status=new,paid&filter[min]=1.5&ids=1|2|3\n"
      "X-Tenant: acme\ncookie: session=abcdefgh12; theme=dark\n\n")
write("policy_request", "create-order-json",
      "POST\n/internal/orders\ncontent-type: application/json; charset=utf-8\n\n"
      '{"items": [{"sku": "ABC-000001", "qty": 2, "price": 1.25}], "payment": {"card": "4111111111111111"}}')
write("policy_request", "create-order-form",
      "POST\n/v1/orders\ncontent-type: application/x-www-form-urlencoded\n\n"
      "sku=ABC-000001&qty=3&gift=true&tags=a&tags=b+c%21")
write("policy_request", "read-only-id",
      "PUT\n/v1/orders/7\ncontent-type: application/merge-patch+json\n\n"
      '{"id": "2eb8aa08-aa98-11ea-b4aa-73b441d16380", "items": [{"sku": "ABC-000001", "qty": 1}]}')
write("policy_request", "item-mixed-segment", "GET\n/v1/orders/5/items/AB%2DC.csv\n\n")
write("policy_request", "report-matrix",
      "GET\n/v1/reports/;from=2026-01-01;to=2026-02-01?meta=%7B%22a%22%3A1%7D\n\n")
write("policy_request", "dot-segment", "DELETE\n/v1/orders/%2e%2e/1\nIf-Match: x\n\n")
write("policy_request", "user-me", "HEAD\n/v1/users/me?verbose=true&ratio=null\n\n")

# config: the shipped example and small variants.
write("config", "vigild.toml", read("../../config/vigild.toml"))
write("config", "xdp-only.toml",
      '[xdp]\ninterface = "eth0"\nmode = "auto"\nallow = ["10.0.0.0/8", "2001:db8::/32"]\n'
      'block = ["203.0.113.7"]\n[xdp.rate_limit]\npps = 100\nburst = 200\n')
write("config", "gateway-full.toml",
      '[listener]\nhttps = "[::]:8443"\nhttp = "127.0.0.1:8080"\nheader_timeout = "500ms"\n'
      'idle_timeout = "1m"\n[tls]\ncert = "/c.pem"\nkey = "/k.pem"\n'
      '[[upstream]]\nname = "api"\nurl = "h2c://[::1]:9000/"\n'
      '[[upstream]]\nname = "b"\nurl = "http://127.0.0.1:1"\n'
      '[[rate_limit]]\nname = "per-key"\nkey = "header:x-api-key+client_ip"\nrate = 10\nburst = 20\n'
      '[[rate_limit]]\nname = "fleet"\nkey = "sub+route"\nrate = 5\nburst = 5\nshared = true\n'
      '[fleet]\nredis = "127.0.0.1:6379"\nrate_limit_timeout = "100ms"\n'
      '[[autoban]]\nname = "scanners"\nstatuses = [401, 404]\nthreshold = 50\nwindow = "60s"\nban = "10m"\n'
      '[inspection]\non_degrade = "degrade"\n[audit]\nsink = "syslog"\n[thermal]\nreduced_c = 70.0\n')
write("config", "typo.toml", '[listener]\nhttps = "0.0.0.0:443"\nmax_conections = 5\n')
write("config", "bad-types.toml", '[xdp]\ninterface = 5\n[listener]\nheader_timeout = "ten seconds"\n')


# xdp: Ethernet frames.
def eth(*types):
    f = bytes.fromhex("020000000001020000000002")
    for i, t in enumerate(types):
        f += struct.pack(">H", t)
        if i + 1 < len(types):
            f += b"\x00\x64"
    return f


def ipv4(src, opt_words=0, ihl=None, tot=None, version=4):
    ihl = 5 + opt_words if ihl is None else ihl
    hl = (5 + opt_words) * 4
    tot = hl + 12 if tot is None else tot
    h = bytes([version << 4 | ihl, 0]) + struct.pack(">H", tot) + b"\x00\x00\x40\x00\x40\x11\x00\x00"
    h += bytes(src) + bytes([198, 19, 0, 1]) + b"\x01" * (4 * opt_words)
    return h + b"\x30\x39\x00\x35\x00\x0c\x00\x00vigl"


def ipv6(src):
    return (b"\x60\x00\x00\x00\x00\x08\x11\x40" + bytes(src)
            + bytes.fromhex("20010db8000000000000000000000002") + b"\x30\x39\x00\x35\x00\x08\x00\x00")


V6_PASS = bytes.fromhex("20010db8000c00000000000000000001")
V6_BLOCK = bytes.fromhex("20010db8000b00000000000000000001")
V6_ALLOW = bytes.fromhex("20010db8000a00000000000000000001")
write("xdp", "v4-pass", eth(0x0800) + ipv4([192, 0, 2, 1]))
write("xdp", "v4-blocked", eth(0x0800) + ipv4([203, 0, 113, 9]))
write("xdp", "v4-allowed-over-block", eth(0x0800) + ipv4([198, 51, 100, 7]))
write("xdp", "v4-options", eth(0x0800) + ipv4([10, 1, 2, 3], opt_words=3))
write("xdp", "v4-ihl-too-small", eth(0x0800) + ipv4([192, 0, 2, 1], ihl=4))
write("xdp", "v4-tot-len-short", eth(0x0800) + ipv4([192, 0, 2, 1], tot=10))
write("xdp", "v4-truncated", (eth(0x0800) + ipv4([192, 0, 2, 1]))[:30])
write("xdp", "v6-pass", eth(0x86DD) + ipv6(V6_PASS))
write("xdp", "v6-blocked-vlan", eth(0x8100, 0x86DD) + ipv6(V6_BLOCK))
write("xdp", "v6-allowed-qinq", eth(0x88A8, 0x8100, 0x86DD) + ipv6(V6_ALLOW))
write("xdp", "v4-mapped-v6", eth(0x86DD) + ipv6(bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1])))
write("xdp", "triple-tag", eth(0x8100, 0x8100, 0x8100, 0x0800) + ipv4([192, 0, 2, 1]))
write("xdp", "arp", eth(0x0806) + bytes.fromhex("0001080006040001") + bytes(20))
write("xdp", "vlan-truncated", eth(0x8100)[:14] + b"\x00")

# planted: near misses only; the fuzzer has to find the rest.
write("planted", "hello", "hello")
write("planted", "zeros", bytes(8))
