import { BeforeApplicationShutdown, OnApplicationBootstrap } from '@nestjs/common';
import { InstanceRegistry } from '../instances/instance-registry';
import { ResilientConsumer } from './resilient-consumer';

/**
 * A consumer's life in its own module: started with the application, in the
 * background (the gateway answers from the stored read model while Kafka is
 * away), its partitions reported to the instance heartbeat; stopped, leaving
 * its group, before the application's shutdown hooks close the outbox, the
 * store and Kafka it writes through.
 */
export class ConsumerLifecycle implements OnApplicationBootstrap, BeforeApplicationShutdown {
  constructor(
    private readonly consumer: ResilientConsumer,
    private readonly instances: InstanceRegistry,
  ) {}

  onApplicationBootstrap(): void {
    this.consumer.reportAssignmentTo((topic, partitions) => this.instances.ownsPartitions(topic, partitions));
    this.consumer.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.consumer.stop();
  }
}
