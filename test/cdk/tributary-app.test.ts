/**
 * The deployed architecture, asserted on one synthesized template (external Kafka with
 * SASL/SCRAM + TLS, a new VPC, an alarm topic). One synth for the whole file: it bundles the
 * fixture functions with esbuild and stages the Docker context.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import { beforeAll, describe, expect, it } from 'vitest';
import { TributaryApp } from '../../cdk/index.ts';
import { app } from './fixtures/app.ts';
import {
  FIXTURE_APP_MODULE,
  FIXTURE_HANDLERS_DIR,
  REPO_ROOT,
  actionsOf,
  cdkJsonContext,
  findIamWildcards,
  statementsOfRole,
} from './helpers.ts';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tributary/kafka-AbCdEf';
const KAFKA_SG = 'sg-0123456789abcdef0';

let template: Template;
let tributary: TributaryApp;
let stack: cdk.Stack;
let assembly: cdk.cx_api.CloudAssembly;

beforeAll(() => {
  const cdkApp = new cdk.App({ context: cdkJsonContext() });
  stack = new cdk.Stack(cdkApp, 'FixtureStack');
  tributary = new TributaryApp(stack, 'Tributary', {
    app,
    appModule: FIXTURE_APP_MODULE,
    engineDockerfile: 'Dockerfile',
    handlersDir: FIXTURE_HANDLERS_DIR,
    partitionCount: 6,
    minTasks: 2,
    kafka: {
      brokers: ['b-1.kafka.example.com:9096', 'b-2.kafka.example.com:9096'],
      scramSecret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'KafkaSecret', SECRET_ARN),
      securityGroup: ec2.SecurityGroup.fromSecurityGroupId(stack, 'KafkaSg', KAFKA_SG),
    },
    alarmTopic: new sns.Topic(stack, 'AlarmTopic'),
  });
  template = Template.fromStack(stack);
  assembly = cdkApp.synth();
}, 180_000);

function logicalId(construct: unknown): string {
  return stack.getLogicalId((construct as { node: { defaultChild: cdk.CfnElement } }).node.defaultChild);
}

interface AssetManifest {
  files?: Record<string, { source: { path: string; packaging?: string } }>;
  dockerImages?: Record<string, { source: { directory: string; dockerFile?: string; dockerBuildArgs?: Record<string, string> } }>;
}

/** The stack's asset manifest (`<stack>.assets.json`): what `cdk deploy` would upload and build. */
function assetManifest(): AssetManifest {
  return JSON.parse(fs.readFileSync(path.join(assembly.directory, `${stack.artifactId}.assets.json`), 'utf8')) as AssetManifest;
}

function engineContainer(): Record<string, any> {
  const defs = template.findResources('AWS::ECS::TaskDefinition');
  const [def] = Object.values(defs);
  return def!.Properties.ContainerDefinitions[0];
}

function envOf(container: Record<string, any>): Record<string, unknown> {
  return Object.fromEntries((container.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]));
}

/** The resources of a grant on the views table and its two indexes, as synthesized. */
function tableAndIndexes(): unknown[] {
  const arn = { 'Fn::GetAtt': [logicalId(tributary.table), 'Arn'] };
  return [arn, ...['byKey', 'closing'].map((index) => ({ 'Fn::Join': ['', [arn, `/index/${index}`]] }))];
}

describe('views table', () => {
  it('is on-demand with pk/sk strings, PITR, TTL on `ttl`, and retained', () => {
    template.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BillingMode: 'PAY_PER_REQUEST',
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: Match.arrayWith([
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ]),
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      },
    });
    template.resourceCountIs('AWS::DynamoDB::Table', 1);
  });

  it('has the KEYS_ONLY key index byKey (ixShard S, ixKey S) and closing index (closeShard S, closeAt N), and no other', () => {
    const [table] = Object.values(template.findResources('AWS::DynamoDB::Table'));
    const indexes = table!.Properties.GlobalSecondaryIndexes as Array<Record<string, unknown>>;
    expect([...indexes].sort((a, b) => String(a.IndexName).localeCompare(String(b.IndexName)))).toEqual([
      {
        IndexName: 'byKey',
        KeySchema: [
          { AttributeName: 'ixShard', KeyType: 'HASH' },
          { AttributeName: 'ixKey', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
      {
        IndexName: 'closing',
        KeySchema: [
          { AttributeName: 'closeShard', KeyType: 'HASH' },
          { AttributeName: 'closeAt', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ]);
    expect(table!.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining([
        { AttributeName: 'ixShard', AttributeType: 'S' },
        { AttributeName: 'ixKey', AttributeType: 'S' },
        { AttributeName: 'closeShard', AttributeType: 'S' },
        { AttributeName: 'closeAt', AttributeType: 'N' },
      ]),
    );
    expect(table!.Properties.AttributeDefinitions).toHaveLength(6);
  });
});

describe('engine service', () => {
  it('runs on Fargate in private subnets with a rolling-back circuit breaker', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      DeploymentConfiguration: {
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
        MinimumHealthyPercent: 100,
        MaximumPercent: 200,
      },
      NetworkConfiguration: { AwsvpcConfiguration: { AssignPublicIp: 'DISABLED' } },
    });
    template.hasResourceProperties('AWS::ECS::Cluster', {
      ClusterSettings: [{ Name: 'containerInsights', Value: 'enabled' }],
    });
  });

  it('checks /health on port 8080 and stops gracefully', () => {
    const container = engineContainer();
    const command = (container.HealthCheck.Command as string[]).join(' ');
    expect(container.HealthCheck.Command[0]).toBe('CMD');
    expect(command).toContain('http://127.0.0.1:8080/health');
    expect(container.HealthCheck.StartPeriod).toBeGreaterThan(0);
    expect(container.StopTimeout).toBe(60);
    expect(container.Essential).toBe(true);
    expect(envOf(container).TRIBUTARY_HEALTH_PORT).toBe('8080');
    expect(envOf(container).TRIBUTARY_HEALTH_HOST).toBe('0.0.0.0');
  });

  it('sizes the state cache to a quarter of the task memory', () => {
    template.hasResourceProperties('AWS::ECS::TaskDefinition', { Memory: '1024' });
    expect(envOf(engineContainer()).TRIBUTARY_CACHE_MAX_BYTES).toBe(String(256 * 1024 * 1024));
  });

  it('passes the table, functions, dead-letter topic and Kafka settings as env', () => {
    const env = envOf(engineContainer());
    expect(env.TRIBUTARY_TABLE).toEqual({ Ref: logicalId(tributary.table) });
    expect(env.TRIBUTARY_APP).toBe('fixture');
    expect(env.TRIBUTARY_DEAD_LETTER_TOPIC).toBe('fixture.dead-letter');
    expect(env.TRIBUTARY_GROUP_ID).toBe('fixture');
    expect(env.KAFKA_BROKERS).toBe('b-1.kafka.example.com:9096,b-2.kafka.example.com:9096');
    expect(env.KAFKA_AUTH).toBe('scram-sha-512');
    expect(env.KAFKA_SSL).toBe('true');
    // TRIBUTARY_FUNCTION_NAMES: JSON of the triggered functions only, names resolved at deploy time.
    const names = JSON.stringify(env.TRIBUTARY_FUNCTION_NAMES);
    expect(names).toContain(logicalId(tributary.functions.notify));
    expect(names).toContain(logicalId(tributary.functions.audit));
    expect(names).not.toContain(logicalId(tributary.functions.report));
    expect(names).toMatch(/\\"notify\\":\\"/);
  });

  it('gets the SCRAM credentials from Secrets Manager as ECS secrets, never as plain env', () => {
    const container = engineContainer();
    expect(container.Secrets).toEqual([
      { Name: 'KAFKA_SASL_USERNAME', ValueFrom: `${SECRET_ARN}:username::` },
      { Name: 'KAFKA_SASL_PASSWORD', ValueFrom: `${SECRET_ARN}:password::` },
    ]);
    expect(Object.keys(envOf(container)).filter((name) => /SASL|PASSWORD|SECRET/.test(name))).toEqual([]);
  });

  it('logs to its own log group with retention', () => {
    const container = engineContainer();
    expect(container.LogConfiguration.LogDriver).toBe('awslogs');
    expect(container.LogConfiguration.Options['awslogs-group']).toEqual({ Ref: logicalId(tributary.engineLogGroup) });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    // engine + one per function, every one with a retention
    const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
    expect(groups).toHaveLength(4);
    for (const group of groups) expect(group.Properties.RetentionInDays).toBe(30);
  });

  it('builds its image from the repository Dockerfile, without node_modules in the context', () => {
    const images = Object.values(assetManifest().dockerImages ?? {});
    expect(images).toHaveLength(1);
    const source = images[0]!.source;
    expect(source.dockerFile).toBe('Dockerfile');
    expect(source.dockerBuildArgs).toEqual({ APP_MODULE: FIXTURE_APP_MODULE });
    const staged = path.join(assembly.directory, source.directory);
    expect(fs.readFileSync(path.join(staged, 'Dockerfile'), 'utf8')).toBe(fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8'));
    expect(fs.existsSync(path.join(staged, 'package-lock.json'))).toBe(true);
    expect(fs.existsSync(path.join(staged, FIXTURE_APP_MODULE))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'node_modules'))).toBe(false);
    expect(fs.existsSync(path.join(staged, 'cdk.out'))).toBe(false);
  });

  it('lets the engine security group into the Kafka brokers on their port', () => {
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: KAFKA_SG,
      IpProtocol: 'tcp',
      FromPort: 9096,
      ToPort: 9096,
      SourceSecurityGroupId: { 'Fn::GetAtt': [logicalId(tributary.engineSecurityGroup), 'GroupId'] },
    });
  });
});

describe('autoscaling on consumer lag', () => {
  it('tracks Tributary/ConsumerLag per task between minTasks and the partition count', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: 2,
      MaxCapacity: 6,
      ScalableDimension: 'ecs:service:DesiredCount',
    });
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        TargetValue: 10_000,
        CustomizedMetricSpecification: {
          Namespace: 'Tributary',
          MetricName: 'ConsumerLag',
          Dimensions: [{ Name: 'App', Value: 'fixture' }],
          Statistic: 'Average',
        },
      },
    });
  });
});

describe('functions', () => {
  function lambdas(): Record<string, any> {
    return template.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'nodejs22.x' } });
  }

  it('deploys one Node.js 22 function per handler file, with table and app env', () => {
    expect(Object.keys(tributary.functions).sort()).toEqual(['audit', 'notify', 'report']);
    const functions = lambdas();
    expect(Object.keys(functions)).toHaveLength(3);
    for (const fn of Object.values(functions)) {
      expect(fn.Properties.Handler).toBe('index.handler');
      expect(fn.Properties.Environment.Variables).toMatchObject({
        TRIBUTARY_TABLE: { Ref: logicalId(tributary.table) },
        TRIBUTARY_APP: 'fixture',
      });
      expect(fn.Properties.LoggingConfig.LogGroup).toEqual({ Ref: expect.stringMatching(/Logs/) });
    }
  });

  it('bundles each handler with esbuild into an ESM asset', () => {
    const files = Object.values(assetManifest().files ?? {}).map((f) => path.join(assembly.directory, f.source.path, 'index.mjs'));
    const bundles = files.filter((p) => fs.existsSync(p));
    expect(bundles).toHaveLength(3);
    expect(bundles.map((p) => fs.readFileSync(p, 'utf8')).join('\n')).toContain('"notify"');
  });

  it('gives each function read-only access to views, idempotency-marker writes only, and its own log group', () => {
    for (const [name, fn] of Object.entries(tributary.functions)) {
      const statements = statementsOfRole(template, logicalId(fn.role));
      const actions = actionsOf(statements);
      expect(actions.filter((a) => a.startsWith('dynamodb:'))).not.toHaveLength(0);
      const unconditional = statements.filter((s) => s.Condition === undefined);
      expect(actionsOf(unconditional).filter((a) => /dynamodb:(Put|Update|Delete|BatchWrite)/.test(a)), name).toEqual([]);
      const writes = statements.filter((s) => actionsOf([s]).some((a) => /dynamodb:(Put|Update|Delete|BatchWrite)/.test(a)));
      expect(writes, name).toHaveLength(1);
      expect(actionsOf(writes).sort()).toEqual(['dynamodb:DeleteItem', 'dynamodb:PutItem']);
      expect(writes[0]!.Condition).toEqual({ 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': ['_idempotency'] } });
      expect(actions.filter((a) => !a.startsWith('dynamodb:') && !a.startsWith('logs:'))).toEqual([]);
      // query() reads the key index: reads cover the table and its indexes by name.
      const reads = unconditional.filter((st) => actionsOf([st]).includes('dynamodb:Query'));
      expect(reads, name).toHaveLength(1);
      expect(reads[0]!.Resource, name).toEqual(tableAndIndexes());
      const roles = template.findResources('AWS::IAM::Role');
      expect(roles[logicalId(fn.role)]!.Properties.ManagedPolicyArns).toBeUndefined();
    }
  });
});

describe('engine permissions', () => {
  it('invokes only the functions its triggers name', () => {
    const statements = statementsOfRole(template, logicalId(tributary.taskDefinition.taskRole));
    const invoke = statements.filter((s) => actionsOf([s]).includes('lambda:InvokeFunction'));
    expect(invoke).toHaveLength(1);
    expect(invoke[0]!.Resource).toEqual(expect.arrayContaining([
      { 'Fn::GetAtt': [logicalId(tributary.functions.notify), 'Arn'] },
      { 'Fn::GetAtt': [logicalId(tributary.functions.audit), 'Arn'] },
    ]));
    expect(invoke[0]!.Resource).toHaveLength(2);
  });

  it('reads and writes only its table, and has no Kafka IAM actions with SCRAM', () => {
    const statements = statementsOfRole(template, logicalId(tributary.taskDefinition.taskRole));
    const dynamo = statements.filter((s) => actionsOf([s]).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    // The table and its two indexes by name (the engine reads the closing index), no `index/*`.
    expect(dynamo[0]!.Resource).toEqual(tableAndIndexes());
    expect(actionsOf(dynamo)).toEqual(expect.arrayContaining(['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:BatchGetItem', 'dynamodb:Query']));
    expect(actionsOf(statements).filter((a) => !a.startsWith('dynamodb:') && a !== 'lambda:InvokeFunction')).toEqual([]);
  });

  it('lets only the execution role read the SCRAM secret, and only that secret', () => {
    const execution = statementsOfRole(template, logicalId(tributary.taskDefinition.executionRole));
    const secretStatements = execution.filter((s) => actionsOf([s]).some((a) => a.startsWith('secretsmanager:')));
    expect(secretStatements).toHaveLength(1);
    expect(secretStatements[0]!.Resource).toBe(SECRET_ARN);
  });

  it('has no wildcard action or resource beyond the documented exceptions', () => {
    expect(findIamWildcards(template)).toEqual([]);
  });
});

describe('alarms', () => {
  function alarms(): Array<Record<string, any>> {
    return Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
  }

  it('alarms on consumer lag and dead letters of the app', () => {
    expect(alarms()).toEqual(expect.arrayContaining([
      expect.objectContaining({ Namespace: 'Tributary', MetricName: 'ConsumerLag', Dimensions: [{ Name: 'App', Value: 'fixture' }], Threshold: 100_000 }),
      expect.objectContaining({ Namespace: 'Tributary', MetricName: 'DeadLetters', Dimensions: [{ Name: 'App', Value: 'fixture' }], Threshold: 1, Statistic: 'Sum' }),
    ]));
  });

  it('alarms when engine tasks keep stopping (running below desired, Container Insights)', () => {
    const tasks = alarms().find((a) => JSON.stringify(a.Metrics ?? []).includes('RunningTaskCount'));
    expect(tasks).toBeDefined();
    const metrics = JSON.stringify(tasks!.Metrics);
    expect(metrics).toContain('ECS/ContainerInsights');
    expect(metrics).toContain('DesiredTaskCount');
    expect(tasks!.Metrics.find((m: any) => m.Expression)?.Expression).toBe('desired - running');
    expect(tasks!.DatapointsToAlarm).toBe(3);
  });

  it('alarms on errors of every function, and notifies the alarm topic', () => {
    const errors = alarms().filter((a) => a.Namespace === 'AWS/Lambda' && a.MetricName === 'Errors');
    expect(errors).toHaveLength(3);
    expect(tributary.alarms).toHaveLength(6);
    const topic = template.findResources('AWS::SNS::Topic');
    const topicRef = { Ref: Object.keys(topic)[0] };
    for (const alarm of alarms()) expect(alarm.AlarmActions).toEqual([topicRef]);
  });
});
