import { Controller, Get, Res } from '@nestjs/common';
import { FastifyReply } from 'fastify';
import { stringify } from 'yaml';
import { bundleOpenApiDocument } from './openapi-document';

/**
 * The bank port's OpenAPI document, for banks and their tools: unauthenticated
 * and, like every answer of this port, signed (the onSend hook). Read and
 * bundled once, when the gateway starts: the file does not change under a
 * running gateway, and a document that cannot be bundled stops the start.
 */
@Controller()
export class OpenApiController {
  private readonly yaml: string;
  private readonly json: string;

  constructor() {
    const document = bundleOpenApiDocument();
    this.yaml = stringify(document, { lineWidth: 0 });
    this.json = JSON.stringify(document);
  }

  @Get('openapi.yaml')
  asYaml(@Res() reply: FastifyReply): void {
    reply.status(200).header('content-type', 'application/yaml').send(this.yaml);
  }

  @Get('openapi.json')
  asJson(@Res() reply: FastifyReply): void {
    reply.status(200).header('content-type', 'application/json').send(this.json);
  }
}
