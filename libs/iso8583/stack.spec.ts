import fc from 'fast-check';
import { IsoFields, packMessage, peekFields, peekMessageHead, unpackMessage } from './codec';
import { FIELDS } from './field-formats';
import { retailMac, softwareMacKey } from './mac';
import { macFieldFor, macFieldOf, macOf, packSigned, verifyMac } from './mac-filter';
import { checkMessageTable, echo, echoedFields, MESSAGE_TABLE, MessageDefinitionError, processingCodeOf, requestCarriesMac, requiredFields } from './message-definitions';
import { SAMPLE_0200 } from '../../test/support/atm-requests';
import { buildOriginalDataElements, parseOriginalDataElements, readActivationRequest, readNetworkManagement, readReversalAdvice } from './views';

const key = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
const macKey = softwareMacKey(key);
const activation: IsoFields = SAMPLE_0200;
const advice: IsoFields = {
  0: '0420',
  2: '4111111111111111',
  3: '910000',
  7: '1123100500',
  11: '000124',
  32: '111111',
  37: '123456789012',
  41: 'TERM0001',
  90: '020000012311231000000000111111100000000000',
};

describe('MAC filter (spec 4.3)', () => {
  it('puts the MAC in 64 without a secondary bitmap and in 128 with one, over every byte before it with its bit set', () => {
    for (const fields of [activation, advice]) {
      const raw = packSigned(fields, macKey);
      const field = macFieldFor(fields);
      expect(macFieldOf(raw)).toBe(field);
      expect(field).toBe(fields === advice ? 128 : 64);
      expect(unpackMessage(raw)[field]).toBe(macOf(raw).toString('hex'));
      expect(macOf(raw)).toEqual(retailMac(key, raw.subarray(0, raw.length - 8)));
      expect(verifyMac(raw, unpackMessage(raw), macKey)).toBe('valid');
    }
  });

  it('says which way a MAC fails: missing before no key, and a changed byte anywhere is invalid', () => {
    const unsigned = packMessage(activation);
    expect(verifyMac(unsigned, activation, macKey)).toBe('missing');
    expect(verifyMac(unsigned, activation, null)).toBe('missing');
    const signed = packSigned(activation, macKey);
    expect(verifyMac(signed, unpackMessage(signed), null)).toBe('no-key');
    fc.assert(
      fc.property(fc.nat(signed.length - 1 - 12).map((n) => n + 12), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const changed = Buffer.from(signed);
        changed[at] ^= xor;
        let fields: IsoFields;
        try {
          fields = unpackMessage(changed);
        } catch {
          return;
        }
        expect(verifyMac(changed, fields, macKey)).toBe('invalid');
      }),
      { seed: 20261127, numRuns: 300 },
    );
  });

  it('without a key, packs a MAC field of zeros (the shape of a signed message)', () => {
    const raw = packSigned(activation, null);
    expect(macOf(raw)).toEqual(Buffer.alloc(8));
  });
});

describe('message definitions (contracts/iso8583/messages.json)', () => {
  it('name only fields that fields.json defines, with the directions fields.json gives them', () => {
    for (const message of MESSAGE_TABLE.messages) {
      for (const field of message.required ?? []) expect({ mti: message.mti, field, in: FIELDS.get(field)!.in.includes(message.mti) }).toEqual({ mti: message.mti, field, in: true });
      for (const field of message.echoes ?? []) expect({ mti: message.mti, field, out: FIELDS.get(field)!.out.includes(message.mti) }).toEqual({ mti: message.mti, field, out: true });
    }
  });

  it('refuses a table naming an unknown field or answer', () => {
    const table = { messages: [{ mti: '0200', name: 'x', mac: true, answer: '0210', required: [4] }], otherRequests: { echoes: [] }, unreadable: { required: [], echoes: [] } };
    expect(() => checkMessageTable(table, new Set([2]))).toThrow(MessageDefinitionError);
    expect(() => checkMessageTable({ ...table, messages: [{ ...table.messages[0], required: [2] }] }, new Set([2]))).toThrow(/0210/);
  });

  it('knows the requests that carry a MAC, what they require and what their answers echo', () => {
    expect(['0200', '0420', '0421', '0800', '0210', '0430', '0100'].filter(requestCarriesMac)).toEqual(['0200', '0420', '0421']);
    expect(requiredFields('0200')).toEqual([2, 3, 7, 11, 12, 13, 32, 37, 41, 48]);
    expect(echoedFields('0210')).toEqual([2, 3, 7, 11, 12, 13, 32, 37, 41]);
    expect(echoedFields('0430')).toEqual([2, 3, 7, 11, 32, 37, 41, 90]);
    expect(processingCodeOf('0200')).toBe('910000');
    expect(echo({ ...activation, 48: 'NI0011' }, '0210', { 39: '30' })).toEqual({ 0: '0210', 2: activation[2], 3: '910000', 7: activation[7], 11: activation[11], 12: activation[12], 13: activation[13], 32: activation[32], 37: activation[37], 41: activation[41], 39: '30' });
  });
});

describe('typed views', () => {
  it('reads an 0200 once, field 48 included', () => {
    expect(readActivationRequest(activation)).toEqual({
      ok: true,
      message: { mti: '0200', pan: activation[2], processingCode: '910000', transmittedAt: '1123100000', stan: '000123', localTime: '100000', localDate: '1123', acquirerId: '111111', rrn: '123456789012', terminalId: 'TERM0001', nationalId: '1000000008', mobile: '0512345678' },
    });
  });

  it('says what an 0200 lacks, or that its field 48 is not TLV', () => {
    const { 12: _time, 48: _data, ...partial } = activation;
    expect(readActivationRequest(partial)).toEqual({ ok: false, missing: [12, 48], problem: 'fields 12, 48 missing' });
    expect(readActivationRequest({ ...activation, 48: 'NI0101000' })).toMatchObject({ ok: false, missing: [] });
    expect(readActivationRequest({ ...activation, 48: 'XX001A' })).toMatchObject({ ok: true, message: { nationalId: undefined, mobile: undefined } });
  });

  it('parses field 90 of a reversal advice, an all-zero acquirer being none, and builds it back', () => {
    expect(parseOriginalDataElements(advice[90])).toEqual({ mti: '0200', stan: '000123', transmittedAt: '1123100000', acquirerId: '00001111111', forwardingInstitutionId: null });
    expect(parseOriginalDataElements(`0200000123112310000000000000000000000000000`.slice(0, 42)).acquirerId).toBeNull();
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9]{6}$/), fc.stringMatching(/^[0-9]{10}$/), fc.stringMatching(/^[1-9][0-9]{0,10}$/), (stan, transmittedAt, acquirer) => {
        const original = parseOriginalDataElements(buildOriginalDataElements({ mti: '0200', stan, transmittedAt, acquirerId: acquirer }));
        expect(original).toEqual({ mti: '0200', stan, transmittedAt, acquirerId: acquirer.padStart(11, '0'), forwardingInstitutionId: null });
      }),
      { seed: 20261127, numRuns: 200 },
    );
    expect(readReversalAdvice(advice)).toMatchObject({ ok: true, message: { mti: '0420', rrn: '123456789012', terminalId: 'TERM0001', original: { stan: '000123' } } });
    const { 90: _original, ...withoutOriginal } = advice;
    expect(readReversalAdvice(withoutOriginal)).toMatchObject({ ok: false, missing: [90] });
  });

  it('reads what an 0800 asks for from the contract', () => {
    expect(readNetworkManagement({ 0: '0800', 11: '000001', 70: '301' }).purpose).toBe('echo');
    expect(readNetworkManagement({ 0: '0800', 11: '000001', 70: '999' }).purpose).toBeNull();
    expect(readNetworkManagement({ 0: '0800', 11: '000001' }).purpose).toBeNull();
  });
});

describe('peeking into a frame that does not unpack', () => {
  it('reads the fields messages.json has an answer to such a frame echo, each only if well formed', () => {
    const raw = packMessage(activation);
    const broken = Buffer.from(raw);
    broken.write('XX', raw.indexOf('NI010'));
    expect(peekFields(broken, MESSAGE_TABLE.unreadable.echoes)).toEqual({ mti: '0200', fields: { 11: '000123', 32: '111111', 37: '123456789012' } });
    expect(peekMessageHead(broken)).toEqual({ mti: '0200', stan: '000123', acquirerId: '111111', rrn: '123456789012' });
    const badStan = Buffer.from(raw);
    badStan.write('00012x', raw.indexOf('000123'));
    expect(peekMessageHead(badStan)).toEqual({ mti: '0200', stan: null, acquirerId: '111111', rrn: '123456789012' });
  });
});
