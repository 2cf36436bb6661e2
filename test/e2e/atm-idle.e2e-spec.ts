import { AtmSwitchClient } from '../../libs/iso8583/atm-switch-client';
import { TestEnvironment } from '../support/test-environment';

/** An ATM switch connection that stays silent past ISO8583_IDLE_TIMEOUT_MS is closed; a busy one is not. */
let env: TestEnvironment;

beforeAll(async () => {
  env = await TestEnvironment.start({ ISO8583_IDLE_TIMEOUT_MS: '1500' });
});

afterAll(async () => {
  await env?.stop();
});

it('closes a silent connection after the idle timeout, keeps one that echoes', async () => {
  const key = Buffer.from('0123456789ABCDEFFEDCBA9876543210', 'hex');
  const silent = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, key);
  const busy = await AtmSwitchClient.connect('127.0.0.1', env.isoPort, key);
  let silentClosedAt = 0;
  void silent.closed.then(() => (silentClosedAt = Date.now()));
  const started = Date.now();
  for (let i = 0; i < 6; i++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const echo = await busy.request({ 0: '0800', 7: '1123101500', 11: String(900000 + i), 70: '301' });
    expect(echo.fields[39]).toBe('00');
  }
  expect(silentClosedAt).toBeGreaterThan(0);
  expect(silentClosedAt - started).toBeGreaterThanOrEqual(1400);
  await env.waitForLog((line) => line.includes('connection idle; closing it'));
  await busy.close();
});
