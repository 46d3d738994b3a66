/**
 * The CDK app's stack (`TributaryStack`, configured by `-c tributary:*` context as cdk.json and
 * `npx cdk deploy -c` do) with an existing MSK cluster (IAM auth) in an imported VPC: the Kafka
 * permissions are scoped to the cluster, the app's topics, its consumer group and its view builds' groups, and nothing is
 * looked up. One synth, asset bundling skipped (tributary-app.test.ts covers bundling).
 */
import * as cdk from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { TributaryStack } from '../../cdk/index.ts';
import { app } from './fixtures/app.ts';
import {
  FIXTURE_APP_MODULE,
  FIXTURE_HANDLERS_DIR,
  SKIP_BUNDLING,
  actionsOf,
  cdkJsonContext,
  findIamWildcards,
  statementsOfRole,
} from './helpers.ts';

const CLUSTER_ARN = 'arn:aws:kafka:eu-west-1:123456789012:cluster/prod-kafka/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-7';
const BASE = 'arn:aws:kafka:eu-west-1:123456789012';
const CLUSTER_PATH = 'prod-kafka/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-7';

let template: Template;
let stack: TributaryStack;

beforeAll(() => {
  const cdkApp = new cdk.App({
    context: {
      ...cdkJsonContext(),
      ...SKIP_BUNDLING,
      'tributary:mskClusterArn': CLUSTER_ARN,
      'tributary:brokers': 'b-1.prod-kafka.abc.c2.kafka.eu-west-1.amazonaws.com:9098,b-2.prod-kafka.abc.c2.kafka.eu-west-1.amazonaws.com:9098',
      'tributary:partitions': '4',
      'tributary:vpcId': 'vpc-0a1b2c3d4e5f60718',
      'tributary:subnetIds': 'subnet-0aaaaaaaaaaaaaaa1,subnet-0bbbbbbbbbbbbbbb2',
      'tributary:securityGroupIds': 'sg-0ccccccccccccccc3',
    },
  });
  stack = new TributaryStack(cdkApp, 'Tributary-fixture', { app, appModule: FIXTURE_APP_MODULE, handlersDir: FIXTURE_HANDLERS_DIR });
  template = Template.fromStack(stack);
}, 180_000);

function taskRoleId(): string {
  return stack.getLogicalId(stack.tributary.taskDefinition.taskRole.node.defaultChild as cdk.CfnElement);
}

describe('MSK with IAM auth', () => {
  it('tells the engine to use IAM over TLS, with no SASL secrets', () => {
    const [def] = Object.values(template.findResources('AWS::ECS::TaskDefinition'));
    const container = def!.Properties.ContainerDefinitions[0];
    const env = Object.fromEntries(container.Environment.map((e: { Name: string; Value: unknown }) => [e.Name, e.Value]));
    expect(env.KAFKA_AUTH).toBe('msk-iam');
    expect(env.KAFKA_SSL).toBe('true');
    expect(env.KAFKA_BROKERS).toMatch(/^b-1\.prod-kafka.*:9098,b-2\..*:9098$/);
    expect(container.Secrets).toBeUndefined();
  });

  it('scopes kafka-cluster actions to the cluster, the source and dead-letter topics, and the group', () => {
    const kafka = statementsOfRole(template, taskRoleId()).filter((s) => actionsOf([s]).some((a) => a.startsWith('kafka-cluster:')));
    const byAction = (action: string): unknown[] =>
      kafka.filter((s) => actionsOf([s]).includes(action)).flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]));
    expect(byAction('kafka-cluster:Connect')).toEqual([CLUSTER_ARN]);
    expect(byAction('kafka-cluster:ReadData').sort()).toEqual([
      `${BASE}:topic/${CLUSTER_PATH}/fixture-bookings`,
      `${BASE}:topic/${CLUSTER_PATH}/fixture-members`,
    ]);
    expect(byAction('kafka-cluster:WriteData')).toEqual([`${BASE}:topic/${CLUSTER_PATH}/fixture.dead-letter`]);
    // Its own group, and the groups of the builds of the app's two views (version 1 each).
    const buildGroups = [`${BASE}:group/${CLUSTER_PATH}/fixture.build.attendance`, `${BASE}:group/${CLUSTER_PATH}/fixture.build.members`];
    expect(byAction('kafka-cluster:AlterGroup').sort()).toEqual([`${BASE}:group/${CLUSTER_PATH}/fixture`, ...buildGroups]);
    expect(byAction('kafka-cluster:DescribeGroup').sort()).toEqual([`${BASE}:group/${CLUSTER_PATH}/fixture`, ...buildGroups]);
    // It deletes a build's group once the build swapped, and nothing else.
    expect(byAction('kafka-cluster:DeleteGroup').sort()).toEqual(buildGroups);
    // The engine neither creates, deletes nor reconfigures anything else in the cluster.
    expect(actionsOf(kafka).filter((a) => a !== 'kafka-cluster:DeleteGroup' && /Create|Delete|Alter(?!Group)|Transactional/.test(a))).toEqual([]);
  });

  it('has no wildcard action or resource beyond the documented exceptions', () => {
    expect(findIamWildcards(template)).toEqual([]);
  });
});

describe('context-configured stack', () => {
  it('runs in the imported VPC subnets and security groups without creating a VPC', () => {
    template.resourceCountIs('AWS::EC2::VPC', 0);
    template.resourceCountIs('AWS::EC2::SecurityGroup', 0);
    template.hasResourceProperties('AWS::ECS::Service', {
      NetworkConfiguration: {
        AwsvpcConfiguration: {
          Subnets: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'],
          SecurityGroups: ['sg-0ccccccccccccccc3'],
          AssignPublicIp: 'DISABLED',
        },
      },
    });
  });

  it('caps the task count at the partition count from context', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 1, MaxCapacity: 4 });
  });

  it('synthesizes with no warning or error annotation', () => {
    const annotations = Annotations.fromStack(stack);
    expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
    expect(annotations.findError('*', Match.anyValue())).toEqual([]);
  });

  it('is environment-agnostic: nothing to look up, so synth runs offline', () => {
    expect(cdk.Token.isUnresolved(stack.account)).toBe(true);
    expect(cdk.Token.isUnresolved(stack.region)).toBe(true);
    const missing = stack.node.root.node.metadata.filter((m) => m.type === 'aws:cdk:missing-context');
    expect(missing).toEqual([]);
  });
});
