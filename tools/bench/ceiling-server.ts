import 'reflect-metadata';
import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Controller, Module, Post, Req, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { FastifyReply, FastifyRequest } from 'fastify';
import { parseDetachedJws, softwareSigningKey, verifyDetachedSignature } from '../../libs/jws';
import { parseCertificateBundle } from '../../libs/pki';
import { BODY_LIMIT_BYTES } from '../../src/channels/http/http-channel';
import { ResponseSigner } from '../../src/channels/http/response-signer';
import { defineTool, readOptions } from '../options';

/**
 * The benchmark's HTTP ceiling: the gateway's HTTP stack (NestJS on Fastify
 * with the same options, raw body bytes, detached JWS verified with the same
 * library code, the response signed the same way) answering without store or
 * Kafka. The gateway can be no faster than this on the same machine.
 *
 * Run by `npm run bench`: node dist/tools/bench/ceiling-server.js --config <config.json>
 */
interface CeilingConfig {
  certificates: string[];
  gatewayKeyFile: string;
  gatewayCertFile: string;
}

const TOOL = defineTool({
  name: 'ceiling-server',
  invocation: 'node dist/tools/bench/ceiling-server.js',
  summary: "The benchmark's HTTP ceiling: the gateway's HTTP stack answering without store or Kafka. Started by `npm run bench`.",
  options: { config: { type: 'string', value: 'FILE', required: true, help: 'JSON: the bank certificates (PEM) to accept, the gateway signing key and certificate files' } },
});
const config = JSON.parse(readFileSync(readOptions(TOOL).config, 'utf8')) as CeilingConfig;
const keys = new Map<string, KeyObject>();
for (const pem of config.certificates) {
  const [info] = parseCertificateBundle(pem);
  keys.set(info.thumbprint, new X509Certificate(pem).publicKey);
}

@Controller('v1/activations')
class CeilingController {
  @Post()
  async submit(@Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const jws = parseDetachedJws(String(request.headers['x-jws-signature']));
    const key = keys.get(jws.header.kid);
    if (!key) {
      reply.status(401).send('{"code":"UNKNOWN_KEY"}');
      return;
    }
    await verifyDetachedSignature(jws, body, key);
    const parsed = JSON.parse(body.toString('utf8')) as { nationalId: string };
    reply
      .status(200)
      .header('content-type', 'application/json')
      .send(JSON.stringify({ requestId: request.headers['x-request-id'], status: 'ACCEPTED', reason: null, nationalIdLength: parsed.nationalId.length }));
  }
}

@Module({ controllers: [CeilingController] })
class CeilingModule {}

async function main(): Promise<void> {
  const signer = new ResponseSigner(softwareSigningKey(createPrivateKey(readFileSync(config.gatewayKeyFile, 'utf8'))), parseCertificateBundle(readFileSync(config.gatewayCertFile, 'utf8'))[0].thumbprint, 'ceiling');
  const app = await NestFactory.create<NestFastifyApplication>(
    CeilingModule,
    new FastifyAdapter({ bodyLimit: BODY_LIMIT_BYTES, connectionTimeout: 30_000, requestTimeout: 30_000, return503OnClosing: true }),
    { bodyParser: false, logger: false },
  );
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: BODY_LIMIT_BYTES }, (_request: FastifyRequest, body: Buffer, done: (err: Error | null, body?: Buffer) => void) => done(null, body));
  fastify.addHook('onSend', async (request, reply, payload) => {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : Buffer.alloc(0);
    reply.header('x-jws-signature', signer.sign(String(request.headers['x-request-id']), request.method, request.url, bytes));
    return bytes;
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.getHttpServer().address();
  process.stdout.write(`${JSON.stringify({ httpPort: typeof address === 'object' && address ? address.port : 0 })}\n`);
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

void main();
