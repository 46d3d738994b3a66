import { Annotations, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import type { App } from '../../sdk/index.ts';
import { DeploymentError } from './errors.ts';
import type { KafkaAuth, TributaryAppProps } from './props.ts';
import { TributaryApp } from './tributary-app.ts';

/** Context keys the CDK app reads (`cdk.json` "context" or `npx cdk deploy -c key=value`). */
export const CONTEXT_KEYS = {
  /** Comma-separated `host:port` bootstrap brokers. */
  brokers: 'tributary:brokers',
  /** MSK cluster ARN: IAM auth, scoped `kafka-cluster:*` permissions. */
  mskClusterArn: 'tributary:mskClusterArn',
  /** Full ARN of a Secrets Manager secret `{"username","password"}`: SASL/SCRAM-SHA-512 over TLS. */
  scramSecretArn: 'tributary:scramSecretArn',
  /** `none` | `scram-sha-512` | `msk-iam`; inferred from the two keys above when absent. */
  auth: 'tributary:auth',
  /** `true` | `false`; default true unless auth is none. */
  tls: 'tributary:tls',
  /** Partition count of the source topics: the engine's maximum task count. */
  partitions: 'tributary:partitions',
  minTasks: 'tributary:minTasks',
  maxTasks: 'tributary:maxTasks',
  /** Existing VPC id; needs `subnetIds`. Without it a new VPC is created. */
  vpcId: 'tributary:vpcId',
  /** Comma-separated subnet ids of the engine tasks (private, with a route to Kafka and AWS APIs). */
  subnetIds: 'tributary:subnetIds',
  /** Comma-separated security group ids of the engine tasks. */
  securityGroupIds: 'tributary:securityGroupIds',
  /** Security group of the brokers; the engine's group is allowed in on the broker ports. */
  kafkaSecurityGroupId: 'tributary:kafkaSecurityGroupId',
  /** Issuer (`iss`, an https URL) of the JWTs live connections present; without it, live connections use IAM. */
  liveJwtIssuer: 'tributary:liveJwtIssuer',
  /** Audience (`aud`) those JWTs must hold; required with `liveJwtIssuer`. */
  liveJwtAudience: 'tributary:liveJwtAudience',
} as const;

/** Reserved, never-resolving host (RFC 2606) used when no Kafka is configured, so an offline synth works. */
export const PLACEHOLDER_BROKER = 'kafka.invalid:9092';
/** Without `tributary:partitions`: a small topic's partition count. */
export const DEFAULT_PARTITIONS = 3;

function contextError(key: string, message: string): DeploymentError {
  return new DeploymentError('INVALID_CONTEXT', `context ${key}: ${message}`, { prop: key });
}

function list(scope: Construct, key: string): string[] | undefined {
  const value: unknown = scope.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value;
  if (typeof value === 'string') return value.split(',').map((v) => v.trim()).filter((v) => v.length > 0);
  throw contextError(key, `expected a comma-separated string, received ${JSON.stringify(value)}`);
}

function text(scope: Construct, key: string): string | undefined {
  const value: unknown = scope.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw contextError(key, `expected a string, received ${JSON.stringify(value)}`);
  return value;
}

function integer(scope: Construct, key: string): number | undefined {
  const value: unknown = scope.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  const number = typeof value === 'string' ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isInteger(number)) {
    throw contextError(key, `expected an integer, received ${JSON.stringify(value)}; e.g. -c ${key}=6`);
  }
  return number;
}

function bool(scope: Construct, key: string): boolean | undefined {
  const value: unknown = scope.node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw contextError(key, `expected true or false, received ${JSON.stringify(value)}`);
}

/**
 * Builds `TributaryApp` props (all but `app`) from the `tributary:*` context of `scope`, importing
 * the named VPC, subnets, security groups and secret by id/ARN: no lookups, so synth runs offline.
 */
export function propsFromContext(scope: Construct, app?: App): Omit<TributaryAppProps, 'app'> {
  const mskClusterArn = text(scope, CONTEXT_KEYS.mskClusterArn);
  const scramSecretArn = text(scope, CONTEXT_KEYS.scramSecretArn);
  let brokers = list(scope, CONTEXT_KEYS.brokers);
  if (brokers === undefined) {
    if (mskClusterArn !== undefined) {
      throw contextError(CONTEXT_KEYS.brokers, `is required with ${CONTEXT_KEYS.mskClusterArn}; pass the IAM bootstrap brokers from \`aws kafka get-bootstrap-brokers --cluster-arn ${mskClusterArn}\``);
    }
    brokers = [PLACEHOLDER_BROKER];
    Annotations.of(scope).addWarningV2(
      'tributary:kafkaNotConfigured',
      `No Kafka configured: using placeholder broker ${PLACEHOLDER_BROKER}, which never resolves. Pass -c ${CONTEXT_KEYS.brokers}=host:port[,...] (and ${CONTEXT_KEYS.mskClusterArn} or ${CONTEXT_KEYS.scramSecretArn}) before deploying.`,
    );
  }
  const auth = text(scope, CONTEXT_KEYS.auth) as KafkaAuth | undefined;
  const tls = bool(scope, CONTEXT_KEYS.tls);
  const scramSecret = scramSecretArn === undefined
    ? undefined
    : secretsmanager.Secret.fromSecretCompleteArn(scope, 'KafkaScramSecret', scramSecretArn);

  const vpcId = text(scope, CONTEXT_KEYS.vpcId);
  const subnetIds = list(scope, CONTEXT_KEYS.subnetIds);
  if ((vpcId === undefined) !== (subnetIds === undefined)) {
    throw contextError(
      vpcId === undefined ? CONTEXT_KEYS.vpcId : CONTEXT_KEYS.subnetIds,
      `${CONTEXT_KEYS.vpcId} and ${CONTEXT_KEYS.subnetIds} go together (an imported VPC needs the subnets of the engine tasks); pass both or neither`,
    );
  }
  // Attributes, not Vpc.fromLookup: synth stays offline and needs no credentials.
  const vpc = vpcId === undefined ? undefined : ec2.Vpc.fromVpcAttributes(scope, 'ImportedVpc', {
    vpcId,
    // Only the VPC id is used (security groups); the engine's subnets are passed explicitly below.
    availabilityZones: Fn.getAzs(),
  });
  if (vpc) {
    Annotations.of(vpc).acknowledgeWarning(
      '@aws-cdk/aws-ec2:vpcAttributeIsListTokenavailabilityZones',
      'the engine subnets are passed explicitly (tributary:subnetIds); nothing selects subnets by AZ',
    );
  }
  const vpcSubnets = subnetIds === undefined ? undefined : {
    subnets: subnetIds.map((id) => {
      const subnet = ec2.Subnet.fromSubnetId(scope, `Subnet-${id}`, id);
      // The stack places tasks in these subnets and never adds routes, so it needs no route table id.
      Annotations.of(subnet).acknowledgeWarning('@aws-cdk/aws-ec2:noSubnetRouteTableId', 'engine subnets are only placed into, never routed');
      return subnet;
    }),
  };
  const securityGroups = list(scope, CONTEXT_KEYS.securityGroupIds)
    ?.map((id) => ec2.SecurityGroup.fromSecurityGroupId(scope, `SecurityGroup-${id}`, id));
  const kafkaSecurityGroupId = text(scope, CONTEXT_KEYS.kafkaSecurityGroupId);
  const kafkaSecurityGroup = kafkaSecurityGroupId === undefined
    ? undefined
    : ec2.SecurityGroup.fromSecurityGroupId(scope, 'KafkaSecurityGroup', kafkaSecurityGroupId);

  // Live views get the WebSocket API: JWT connections with an issuer in context, else IAM.
  const liveJwtIssuer = text(scope, CONTEXT_KEYS.liveJwtIssuer);
  const liveJwtAudience = text(scope, CONTEXT_KEYS.liveJwtAudience);
  if ((liveJwtIssuer === undefined) !== (liveJwtAudience === undefined)) {
    throw contextError(
      liveJwtIssuer === undefined ? CONTEXT_KEYS.liveJwtIssuer : CONTEXT_KEYS.liveJwtAudience,
      `${CONTEXT_KEYS.liveJwtIssuer} and ${CONTEXT_KEYS.liveJwtAudience} go together (a JWT is checked for both); pass both or neither`,
    );
  }
  const live: TributaryAppProps['live'] = (app?.live?.views.length ?? 0) === 0
    ? undefined
    : { auth: liveJwtIssuer !== undefined ? { jwt: { issuer: liveJwtIssuer, audience: liveJwtAudience! } } : { iam: true } };

  return {
    ...(live !== undefined ? { live } : {}),
    kafka: { brokers, mskClusterArn, scramSecret, auth, tls, securityGroup: kafkaSecurityGroup },
    partitionCount: integer(scope, CONTEXT_KEYS.partitions) ?? DEFAULT_PARTITIONS,
    minTasks: integer(scope, CONTEXT_KEYS.minTasks),
    maxTasks: integer(scope, CONTEXT_KEYS.maxTasks),
    vpc,
    vpcSubnets,
    securityGroups,
  };
}

/** Props of {@link TributaryStack}. */
export interface TributaryStackProps extends StackProps {
  /** The app to deploy. */
  readonly app: App;
  /**
   * Module exporting `app`, relative to the repository root; bundled into the engine image.
   * @default 'functions/app.ts'
   */
  readonly appModule?: string;
  /**
   * Handler directory relative to the repository root.
   * @default 'functions/handlers'
   */
  readonly handlersDir?: string;
  /**
   * Dockerfile of the engine image, relative to the project root.
   * @default 'Dockerfile' — this repository's, which bundles the engine from its sources
   */
  readonly engineDockerfile?: string;
}

/**
 * The stack `cdk/bin/tributary.ts` deploys: one {@link TributaryApp} configured from context.
 * Environment-agnostic unless `env` is passed, so synth needs no AWS account.
 *
 * @example
 * new TributaryStack(new cdk.App(), 'Tributary-gym', { app });
 */
export class TributaryStack extends Stack {
  /** The deployed app. */
  readonly tributary: TributaryApp;

  constructor(scope: Construct, id: string, props: TributaryStackProps) {
    super(scope, id, props);
    this.tributary = new TributaryApp(this, 'Tributary', {
      app: props.app,
      appModule: props.appModule,
      handlersDir: props.handlersDir,
      // This repository builds the engine from its sources (the root Dockerfile), not from an
      // installed package.
      engineDockerfile: props.engineDockerfile ?? 'Dockerfile',
      ...propsFromContext(this, props.app),
    });
  }
}
