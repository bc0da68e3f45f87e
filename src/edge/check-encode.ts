/**
 * CheckResponse → protobuf bytes, written directly. proto-loader's serializer first turns the
 * plain object into protobufjs message instances (fromObject) and then encodes them through
 * an operation list; for the allow answer of every Check that was more CPU than our whole
 * decision (bench/OPTIMISATIONS.md). This writes the same bytes: fields in field-number order,
 * a field written whenever it is present (not null or undefined) even at its zero value, map
 * entries in Object.keys order — protobufjs's rules, so test/unit/edge/check-encode.test.ts
 * can require byte equality with proto-loader's output.
 *
 * Field numbers: proto/envoy/service/auth/v3/external_auth.proto, envoy/config/core/v3/
 * base.proto, google/rpc/status.proto, envoy/type/v3/http_status.proto, and
 * google/protobuf/struct.proto and wrappers.proto for Struct, Value, ListValue, BoolValue.
 */
import type { CheckResponse, HeaderValueOption, ProtoStruct, ProtoValue } from './protos.js';

const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
function varintSize(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n += 1;
  }
  return n;
}

/**
 * A growing buffer. Two habits keep it cheap for many small fields: ASCII strings are copied
 * by a loop rather than through two native calls each, and a nested message reserves one
 * byte for its length, moving its bytes only in the rare case the length needs more.
 */
class Writer {
  buf = Buffer.allocUnsafe(2048);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  varint(value: number): void {
    this.room(10);
    if (value >= 0 && value < 0x80) {
      this.buf[this.pos++] = value;
      return;
    }
    // int32 semantics, as protobufjs: a negative value is sign-extended to ten bytes.
    if (value < 0) {
      let big = BigInt.asUintN(64, BigInt(Math.trunc(value)));
      while (big >= 0x80n) {
        this.buf[this.pos++] = Number(big & 0x7fn) | 0x80;
        big >>= 7n;
      }
      this.buf[this.pos++] = Number(big);
      return;
    }
    while (value >= 0x80) {
      this.buf[this.pos++] = (value % 128) | 0x80;
      value = Math.floor(value / 128);
    }
    this.buf[this.pos++] = value;
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  int(field: number, value: number): void {
    this.tag(field, VARINT);
    this.varint(value | 0);
  }

  bool(field: number, value: boolean): void {
    this.tag(field, VARINT);
    this.varint(value ? 1 : 0);
  }

  double(field: number, value: number): void {
    this.tag(field, FIXED64);
    this.room(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  string(field: number, value: string): void {
    this.tag(field, BYTES);
    const n = value.length;
    if (n < 0x80) {
      // Short and (usually) ASCII: one length byte, then a byte per character.
      this.room(n + 1);
      const buf = this.buf;
      const start = this.pos;
      buf[start] = n;
      let i = 0;
      for (; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + 1 + i] = c;
      }
      if (i === n) {
        this.pos = start + 1 + n;
        return;
      }
    }
    const length = Buffer.byteLength(value, 'utf8');
    this.varint(length);
    this.room(length);
    this.pos += this.buf.write(value, this.pos, length, 'utf8');
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, BYTES);
    this.varint(value.length);
    this.room(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** Starts a nested message; `end` writes its length in front of it. */
  begin(field: number): number {
    this.tag(field, BYTES);
    this.room(1);
    const start = this.pos;
    this.pos += 1;
    return start;
  }

  end(start: number): void {
    const length = this.pos - start - 1;
    if (length < 0x80) {
      this.buf[start] = length;
      return;
    }
    const extra = varintSize(length) - 1;
    this.room(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    const end = this.pos + extra;
    this.pos = start;
    this.varint(length);
    this.pos = end;
  }
}

const present = <T>(value: T | null | undefined): value is T =>
  value !== undefined && value !== null;

function headerValueOption(w: Writer, field: number, option: HeaderValueOption): void {
  const at = w.begin(field);
  if (present(option.header)) {
    const h = w.begin(1);
    const { key, value, raw_value: raw } = option.header;
    if (present(key)) w.string(1, key);
    if (present(value)) w.string(2, value);
    if (present(raw)) w.bytes(3, raw);
    w.end(h);
  }
  if (present(option.append)) {
    const a = w.begin(2);
    if (present(option.append.value)) w.bool(1, option.append.value);
    w.end(a);
  }
  if (present(option.append_action)) w.int(3, option.append_action);
  if (present(option.keep_empty_value)) w.bool(4, option.keep_empty_value);
  w.end(at);
}

function headerOptions(
  w: Writer,
  field: number,
  options: readonly HeaderValueOption[] | undefined,
): void {
  if (options !== undefined) for (const option of options) headerValueOption(w, field, option);
}

function value(w: Writer, field: number, v: ProtoValue): void {
  const at = w.begin(field);
  if (present(v.nullValue)) w.int(1, v.nullValue);
  if (present(v.numberValue)) w.double(2, Number(v.numberValue));
  if (present(v.stringValue)) w.string(3, String(v.stringValue));
  if (present(v.boolValue)) w.bool(4, Boolean(v.boolValue));
  if (present(v.structValue)) struct(w, 5, v.structValue);
  if (present(v.listValue)) {
    const list = w.begin(6);
    for (const item of v.listValue.values ?? []) value(w, 1, item);
    w.end(list);
  }
  w.end(at);
}

function struct(w: Writer, field: number, s: ProtoStruct): void {
  const at = w.begin(field);
  const fields = s.fields ?? {};
  for (const key of Object.keys(fields)) {
    const entry = w.begin(1);
    w.string(1, key);
    const v = fields[key];
    // protobufjs writes an entry's value message even when empty.
    value(w, 2, v ?? {});
    w.end(entry);
  }
  w.end(at);
}

/** The bytes of a CheckResponse, equal to proto-loader's serializer output. */
export function encodeCheckResponse(response: CheckResponse): Buffer {
  const w = new Writer();
  const { status, denied_response: denied, ok_response: ok, dynamic_metadata: metadata } = response;
  if (present(status)) {
    const at = w.begin(1);
    if (present(status.code)) w.int(1, status.code);
    if (present(status.message)) w.string(2, status.message);
    w.end(at);
  }
  if (present(denied)) {
    const at = w.begin(2);
    if (present(denied.status)) {
      const s = w.begin(1);
      if (present(denied.status.code)) w.int(1, denied.status.code);
      w.end(s);
    }
    headerOptions(w, 2, denied.headers);
    if (present(denied.body)) w.string(3, denied.body);
    w.end(at);
  }
  if (present(ok)) {
    const at = w.begin(3);
    headerOptions(w, 2, ok.headers);
    for (const name of ok.headers_to_remove ?? []) w.string(5, name);
    headerOptions(w, 6, ok.response_headers_to_add);
    for (const name of ok.query_parameters_to_remove ?? []) w.string(8, name);
    w.end(at);
  }
  if (present(metadata)) struct(w, 4, metadata);
  return w.buf.subarray(0, w.pos);
}
