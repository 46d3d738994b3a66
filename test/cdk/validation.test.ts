/**
 * Wrong props and context fail at synth with a coded DeploymentError whose message names the
 * prop, the value and the fix, before any resource is created. No test here synthesizes assets.
 */
import * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { describe, expect, it } from 'vitest';
import { defineApp, defineTrigger } from '../../sdk/index.ts';
import { DeploymentError, TributaryApp, propsFromContext, type TributaryAppProps } from '../../cdk/index.ts';
import { app, attendance } from './fixtures/app.ts';
import { FIXTURE_APP_MODULE, FIXTURE_HANDLERS_DIR, findIamWildcards } from './helpers.ts';

const MSK_ARN = 'arn:aws:kafka:eu-west-1:123456789012:cluster/prod/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-7';

function newStack(context: Record<string, unknown> = {}): cdk.Stack {
  return new cdk.Stack(new cdk.App({ context }), 'ValidationStack');
}

function base(stack: cdk.Stack): TributaryAppProps {
  return {
    app,
    appModule: FIXTURE_APP_MODULE,
    handlersDir: FIXTURE_HANDLERS_DIR,
    partitionCount: 6,
    kafka: { brokers: ['b-1.example.com:9096'], scramSecret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf') },
  };
}

/** Builds TributaryApp with `change` applied to valid props; returns the error and what the tree holds. */
function failure(change: (props: TributaryAppProps, stack: cdk.Stack) => TributaryAppProps): { error: DeploymentError; created: number } {
  const stack = newStack();
  const props = change(base(stack), stack);
  try {
    new TributaryApp(stack, 'Tributary', props);
  } catch (error) {
    if (!(error instanceof DeploymentError)) throw error;
    const created = stack.node.findAll().filter((c) => c instanceof cdk.CfnElement).length;
    return { error, created };
  }
  throw new Error('expected TributaryApp to throw a DeploymentError');
}

describe('TributaryApp props', () => {
  const cases: Array<[string, (p: TributaryAppProps, s: cdk.Stack) => TributaryAppProps, RegExp, string]> = [
    ['SCRAM without a secret', (p) => ({ ...p, kafka: { brokers: ['b:9096'], auth: 'scram-sha-512' } }), /scramSecret is missing/, 'kafka.scramSecret'],
    ['both MSK and external SCRAM', (p) => ({ ...p, kafka: { ...p.kafka, mskClusterArn: MSK_ARN } }), /both mskClusterArn .* and scramSecret/, 'kafka'],
    ['MSK IAM without a cluster ARN', (p) => ({ ...p, kafka: { brokers: ['b:9098'], auth: 'msk-iam' } }), /mskClusterArn is missing/, 'kafka.mskClusterArn'],
    ['a malformed MSK cluster ARN', (p) => ({ ...p, kafka: { brokers: ['b:9098'], mskClusterArn: 'arn:aws:kafka:eu-west-1:123:cluster/x' } }), /not an MSK cluster ARN, received "arn:aws:kafka:eu-west-1:123:cluster\/x"/, 'kafka.mskClusterArn'],
    ['SCRAM without TLS', (p) => ({ ...p, kafka: { ...p.kafka, tls: false } }), /tls is false with auth "scram-sha-512"/, 'kafka.tls'],
    ['no brokers', (p) => ({ ...p, kafka: { brokers: [] } }), /at least one "host:port", received \[\]/, 'kafka.brokers'],
    ['a broker without port', (p) => ({ ...p, kafka: { brokers: ['kafka.example.com'] } }), /holds "kafka.example.com", not "host:port"/, 'kafka.brokers'],
    ['maxTasks < 1', (p) => ({ ...p, maxTasks: 0 }), /maxTasks must be an integer >= 1, received 0/, 'maxTasks'],
    ['maxTasks above the partition count', (p) => ({ ...p, maxTasks: 12 }), /maxTasks \(12\) exceeds partitionCount \(6\)/, 'maxTasks'],
    ['minTasks above maxTasks', (p) => ({ ...p, minTasks: 4, maxTasks: 2 }), /maxTasks \(2\) is below minTasks \(4\)/, 'maxTasks'],
    ['a fractional partition count', (p) => ({ ...p, partitionCount: 2.5 }), /partitionCount must be an integer >= 1, received 2.5/, 'partitionCount'],
    ['stopTimeout past the Fargate limit', (p) => ({ ...p, stopTimeout: cdk.Duration.minutes(5) }), /stopTimeout must be 2..120 seconds .* received 300 s/, 'stopTimeout'],
    ['an unknown log level', (p) => ({ ...p, logLevel: 'verbose' as never }), /logLevel must be one of debug, info, warn, error, received "verbose"/, 'logLevel'],
    ['an appModule outside the repo', (p) => ({ ...p, appModule: '../elsewhere/app.ts' }), /appModule must be a path inside projectRoot/, 'appModule'],
    ['not an app', (p) => ({ ...p, app: { name: 'x' } as never }), /app must be a defineApp\(\) result/, 'app'],
  ];

  it.each(cases)('rejects %s, before creating anything', (_, change, message, prop) => {
    const { error, created } = failure(change);
    expect(error.code).toBe('INVALID_PROPS');
    expect(error.retriable).toBe(false);
    expect(error.context.prop).toBe(prop);
    expect(error.message).toMatch(message);
    expect(created).toBe(0);
  });

  it('rejects a trigger whose function has no handler file, naming the missing file', () => {
    const broken = defineApp({ name: 'broken', views: [attendance], triggers: [defineTrigger({ view: attendance, function: 'notifyTypo' })] });
    const { error, created } = failure((p) => ({ ...p, app: broken }));
    expect(error.code).toBe('MISSING_HANDLER');
    expect(error.message).toContain(`${FIXTURE_HANDLERS_DIR}/notifyTypo.ts does not exist`);
    expect(error.message).toContain('found: audit, notify, report');
    expect(created).toBe(0);
  });

  it('rejects a missing app module, since the engine image bundles it', () => {
    const { error } = failure((p) => ({ ...p, appModule: 'functions/nope.ts' }));
    expect(error.code).toBe('INVALID_PROPS');
    expect(error.message).toContain('functions/nope.ts not found');
  });
});

describe('context of the CDK app', () => {
  function contextFailure(context: Record<string, unknown>): DeploymentError {
    try {
      propsFromContext(newStack(context));
    } catch (error) {
      if (error instanceof DeploymentError) return error;
      throw error;
    }
    throw new Error('expected propsFromContext to throw');
  }

  it('rejects a non-integer partition count', () => {
    const error = contextFailure({ 'tributary:brokers': 'b:9092', 'tributary:partitions': 'six' });
    expect(error.code).toBe('INVALID_CONTEXT');
    expect(error.message).toContain('tributary:partitions: expected an integer, received "six"');
  });

  it('rejects a VPC id without the subnets of the tasks', () => {
    const error = contextFailure({ 'tributary:brokers': 'b:9092', 'tributary:vpcId': 'vpc-0a1b2c3d4e5f60718' });
    expect(error.code).toBe('INVALID_CONTEXT');
    expect(error.message).toContain('pass both or neither');
  });

  it('rejects an MSK cluster without its bootstrap brokers', () => {
    const error = contextFailure({ 'tributary:mskClusterArn': MSK_ARN });
    expect(error.message).toContain('aws kafka get-bootstrap-brokers');
  });

  it('parses brokers, numbers and booleans given as -c strings', () => {
    const props = propsFromContext(newStack({
      'tributary:brokers': 'a.example.com:9092, b.example.com:9092',
      'tributary:partitions': '8',
      'tributary:maxTasks': '4',
      'tributary:tls': 'true',
    }));
    expect(props.kafka.brokers).toEqual(['a.example.com:9092', 'b.example.com:9092']);
    expect(props.partitionCount).toBe(8);
    expect(props.maxTasks).toBe(4);
    expect(props.kafka.tls).toBe(true);
  });

  it('falls back to a never-resolving placeholder broker without Kafka settings, with a warning', () => {
    const stack = newStack();
    const props = propsFromContext(stack);
    expect(props.kafka.brokers).toEqual(['kafka.invalid:9092']);
    // Annotations live in the construct's metadata; reading them there spares a synth.
    const warnings = stack.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    expect(warnings).toEqual([expect.stringContaining('No Kafka configured: using placeholder broker kafka.invalid:9092')]);
  });
});

describe('IAM wildcard walker', () => {
  it('flags wildcard actions, wildcard resources and managed policies, but not the allowlist', () => {
    const stack = newStack();
    const role = new iam.Role(stack, 'Role', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('ReadOnlyAccess')],
    });
    role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:*'], resources: ['arn:aws:s3:::bucket'] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['dynamodb:GetItem'], resources: ['*'] }));
    role.addToPolicy(new iam.PolicyStatement({ actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }));
    const findings = findIamWildcards(Template.fromStack(stack));
    expect(findings.map((f) => f.what).sort()).toEqual(['action', 'managed-policy', 'resource']);
    expect(findings.find((f) => f.what === 'resource')!.detail).toContain('dynamodb:GetItem');
  });
});
