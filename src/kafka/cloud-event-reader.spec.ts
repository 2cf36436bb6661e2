import { CloudEvent, Kafka } from 'cloudevents';
import type { IHeaders } from 'kafkajs';
import { STRUCTURED_CONTENT_TYPE, STRUCTURED_MODE_HEADER_BYTES, STRUCTURED_MODE_HEADERS } from '../outbox/cloud-event';
import { readCloudEvent, structuredValue } from './cloud-event-reader';

const TYPE = 'sa.absher.registration.updated';
const DATA = { nationalId: '1000000008', mobile: '+966512345678', status: 'ACTIVE', version: 3 };
const ATTRIBUTES = { specversion: '1.0', id: 'reg-1', source: 'urn:absher:identity-core', type: TYPE, time: '2025-01-02T03:04:05.000Z', subject: '1000000008' };

/** Headers as kafkajs hands them to a consumer: every value a Buffer. */
const consumed = (headers: Record<string, string>): IHeaders => Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, Buffer.from(value)]));
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

const structured = json({ ...ATTRIBUTES, datacontenttype: 'application/json', data: DATA });
const binaryHeaders = (without: string[] = [], extra: Record<string, string> = {}): IHeaders =>
  consumed({
    ...Object.fromEntries(Object.entries(ATTRIBUTES).filter(([name]) => !without.includes(name)).map(([name, value]) => [`ce_${name}`, value])),
    'content-type': 'application/json',
    ...extra,
  });

describe('structured mode: the value is the event', () => {
  it('with the binding content-type, with only the media type, and with no headers at all (as before the binding)', () => {
    for (const headers of [consumed({ 'content-type': STRUCTURED_CONTENT_TYPE }), consumed({ 'content-type': 'application/cloudevents+json' }), {}, undefined]) {
      expect(readCloudEvent(structured, TYPE, headers)).toEqual({ ok: true, id: 'reg-1', data: DATA });
    }
  });

  it('structuredValue hands the value on untouched (the very buffer: no JSON work)', () => {
    const read = structuredValue(structured, consumed({ 'content-type': STRUCTURED_CONTENT_TYPE }));
    expect(read.ok && read.value).toBe(structured);
    const none = structuredValue(structured, {});
    expect(none.ok && none.value).toBe(structured);
  });

  it('refuses what it refused before, with the same reasons', () => {
    const cases: [Buffer | null, string][] = [
      [null, 'empty message value'],
      [Buffer.alloc(0), 'empty message value'],
      [Buffer.from('{"specversion": "1.0", '), 'value is not UTF-8 JSON'],
      [Buffer.from([0xff, 0xfe]), 'value is not UTF-8 JSON'],
      [json([1]), 'value is not a JSON object'],
      [json({ ...ATTRIBUTES, specversion: '0.3', data: DATA }), 'not a CloudEvents 1.0 event (specversion)'],
      [json({ ...ATTRIBUTES, id: '', data: DATA }), 'CloudEvent id is missing'],
      [json({ ...ATTRIBUTES, type: 'sa.absher.other', data: DATA }), 'unexpected event type "sa.absher.other"'],
      [json({ ...ATTRIBUTES, data: 'text' }), 'data is missing'],
    ];
    for (const [value, reason] of cases) {
      expect(readCloudEvent(value, TYPE)).toEqual({ ok: false, reason });
      expect(readCloudEvent(value, TYPE, consumed({ 'content-type': STRUCTURED_CONTENT_TYPE }))).toEqual({ ok: false, reason });
    }
  });

  it('refuses batches and event formats other than JSON', () => {
    expect(readCloudEvent(structured, TYPE, consumed({ 'content-type': 'application/cloudevents-batch+json' }))).toEqual({
      ok: false,
      reason: 'batched CloudEvents (content-type "application/cloudevents-batch+json") are not accepted: one event per record',
    });
    expect(structuredValue(structured, consumed({ 'content-type': 'application/cloudevents+avro' }))).toEqual({ ok: false, reason: 'unsupported CloudEvents format (content-type "application/cloudevents+avro"): only JSON is read' });
  });
});

describe('binary mode: the value is the data, the attributes are ce_ headers', () => {
  it('reads the event from the headers and the data', () => {
    expect(readCloudEvent(json(DATA), TYPE, binaryHeaders())).toEqual({ ok: true, id: 'reg-1', data: DATA });
  });

  it('structuredValue puts it together as the structured event, with content-type as datacontenttype', () => {
    const read = structuredValue(json(DATA), binaryHeaders([], { ce_partitionkey: '1000000008', 'content-type': 'application/json; charset=utf-8' }));
    expect(read.ok).toBe(true);
    const event = JSON.parse(read.ok ? read.value!.toString() : '');
    expect(event).toEqual({ ...ATTRIBUTES, partitionkey: '1000000008', datacontenttype: 'application/json; charset=utf-8', data: DATA });
    expect(readCloudEvent(read.ok ? read.value : null, TYPE)).toEqual({ ok: true, id: 'reg-1', data: DATA });
  });

  it('reads what the cloudevents SDK emits in binary mode', () => {
    const message = Kafka.binary(new CloudEvent({ ...ATTRIBUTES, datacontenttype: 'application/json', data: DATA }));
    // kafkajs cannot send undefined header values; the SDK leaves unset attributes undefined.
    const headers = Object.fromEntries(Object.entries(message.headers).filter(([, value]) => value !== undefined).map(([name, value]) => [name, String(value)]));
    expect(readCloudEvent(json(message.value), TYPE, consumed(headers))).toEqual({ ok: true, id: 'reg-1', data: DATA });
  });

  it('takes a null header value as absent and leaves headers that name no attribute alone', () => {
    // kafkajs decodes a header sent without a value as null, which its types do not say.
    const headers = { ...binaryHeaders(), ce_dataschema: null, ce_Weird: Buffer.from('x'), ce_data: Buffer.from('"not the data"'), traceparent: Buffer.from('00-abc') } as unknown as IHeaders;
    const read = structuredValue(json(DATA), headers);
    expect(read.ok && JSON.parse(read.value!.toString())).toEqual({ ...ATTRIBUTES, datacontenttype: 'application/json', data: DATA });
  });

  it('is recognised by ce_ headers even without content-type', () => {
    const headers = binaryHeaders();
    delete headers['content-type'];
    expect(readCloudEvent(json(DATA), TYPE, headers)).toEqual({ ok: true, id: 'reg-1', data: DATA });
  });

  it('refuses a record missing a required attribute, naming its header', () => {
    for (const attribute of ['specversion', 'id', 'source', 'type']) {
      expect(structuredValue(json(DATA), binaryHeaders([attribute]))).toEqual({ ok: false, reason: `binary-mode CloudEvent without the header ce_${attribute}` });
    }
    expect(structuredValue(json(DATA), binaryHeaders([], { ce_id: '' }))).toEqual({ ok: false, reason: 'binary-mode CloudEvent without the header ce_id' });
    // content-type application/json and no ce_ headers: binary mode by the binding, and not an event.
    expect(structuredValue(structured, consumed({ 'content-type': 'application/json' }))).toEqual({ ok: false, reason: 'binary-mode CloudEvent without the header ce_specversion' });
  });

  it('refuses data that is not JSON, or missing', () => {
    expect(structuredValue(Buffer.from('hello'), binaryHeaders([], { 'content-type': 'text/plain' }))).toEqual({ ok: false, reason: 'binary-mode data is not JSON (content-type "text/plain")' });
    expect(structuredValue(Buffer.from('{"a":'), binaryHeaders())).toEqual({ ok: false, reason: 'binary-mode data is not UTF-8 JSON' });
    expect(structuredValue(Buffer.from([0xc3, 0x28]), binaryHeaders())).toEqual({ ok: false, reason: 'binary-mode data is not UTF-8 JSON' });
    expect(structuredValue(null, binaryHeaders())).toEqual({ ok: false, reason: 'binary-mode CloudEvent without data (empty message value)' });
    expect(readCloudEvent(json([DATA]), TYPE, binaryHeaders())).toEqual({ ok: false, reason: 'data is missing' });
    // A +json media type is JSON.
    expect(readCloudEvent(json(DATA), TYPE, binaryHeaders([], { 'content-type': 'application/vnd.absher+json' }))).toEqual({ ok: true, id: 'reg-1', data: DATA });
  });

  it('refuses the wrong type, another spec version, repeated and non-UTF-8 headers', () => {
    expect(readCloudEvent(json(DATA), TYPE, binaryHeaders([], { ce_type: 'sa.absher.other' }))).toEqual({ ok: false, reason: 'unexpected event type "sa.absher.other"' });
    expect(readCloudEvent(json(DATA), TYPE, binaryHeaders([], { ce_specversion: '0.3' }))).toEqual({ ok: false, reason: 'not a CloudEvents 1.0 event (specversion)' });
    expect(structuredValue(json(DATA), { ...binaryHeaders(), ce_id: [Buffer.from('a'), Buffer.from('b')] })).toEqual({ ok: false, reason: 'header ce_id appears 2 times' });
    expect(structuredValue(json(DATA), { ...binaryHeaders(), ce_source: Buffer.from([0xff]) })).toEqual({ ok: false, reason: 'header ce_source is not UTF-8' });
    expect(structuredValue(json(DATA), { ...binaryHeaders(), 'content-type': [Buffer.from('application/json'), Buffer.from('text/plain')] })).toEqual({ ok: false, reason: 'header content-type appears 2 times' });
  });
});

describe('what the gateway publishes', () => {
  it('is recognised by the cloudevents SDK as a structured-mode event, and read back by the gateway', () => {
    const headers = { 'content-type': STRUCTURED_MODE_HEADERS['content-type'].toString() };
    expect(headers['content-type']).toBe('application/cloudevents+json; charset=utf-8');
    const message = { headers, key: '1000000008', value: structured.toString(), body: structured.toString() };
    expect(Kafka.isEvent(message)).toBe(true);
    const event = Kafka.toEvent(message) as CloudEvent<typeof DATA>;
    expect({ id: event.id, type: event.type, source: event.source, subject: event.subject, data: event.data }).toEqual({ id: 'reg-1', type: TYPE, source: ATTRIBUTES.source, subject: ATTRIBUTES.subject, data: DATA });
    expect(readCloudEvent(structured, TYPE, STRUCTURED_MODE_HEADERS)).toEqual({ ok: true, id: 'reg-1', data: DATA });
  });

  it('counts the header in the batch bound at its encoded size', () => {
    expect(STRUCTURED_MODE_HEADER_BYTES).toBe(2 + Buffer.byteLength('content-type') + STRUCTURED_MODE_HEADERS['content-type'].length);
  });
});
