/**
 * cdk-nag's AwsSolutions rule pack over stacks holding TributaryApp: with the defaults (a new
 * VPC, SCRAM credentials from Secrets Manager) and with MSK IAM auth in an imported VPC. Every
 * finding is either fixed in the construct or acknowledged there (`Validations.of(...)
 * .acknowledge`) with the reason it does not apply; anything else fails synthesis and this test.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { TributaryApp, type TributaryAppProps } from '../../cdk/index.ts';
import { app } from './fixtures/app.ts';
import { app as liveApp } from './fixtures/live-app.ts';
import { cdkJsonContext, FIXTURE_APP_MODULE, FIXTURE_HANDLERS_DIR, SKIP_BUNDLING } from './helpers.ts';

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:tributary/kafka-AbCdEf';
const MSK_ARN = 'arn:aws:kafka:eu-west-1:123456789012:cluster/prod/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-7';
const outDirs: string[] = [];
afterAll(() => {
  for (const dir of outDirs) fs.rmSync(dir, { recursive: true, force: true });
});

interface ValidationReport {
  readonly pluginReports: { readonly violations?: { readonly ruleName: string; readonly violatingConstructs?: { readonly constructPath?: string }[] }[] }[];
}

/** The AwsSolutions findings left after the construct's acknowledgments, as `rule at path`. */
function findings(kafka: (stack: cdk.Stack) => Pick<TributaryAppProps, 'kafka' | 'vpc' | 'vpcSubnets'>, extra: Partial<TributaryAppProps> = {}): string[] {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'tributary-nag-'));
  outDirs.push(outdir);
  const cdkApp = new cdk.App({ context: { ...cdkJsonContext(), ...SKIP_BUNDLING }, outdir });
  const stack = new cdk.Stack(cdkApp, 'NagStack', { env: { account: '123456789012', region: 'eu-west-1' } });
  new TributaryApp(stack, 'Tributary', {
    app,
    appModule: FIXTURE_APP_MODULE,
    handlersDir: FIXTURE_HANDLERS_DIR,
    engineDockerfile: 'Dockerfile',
    partitionCount: 3,
    ...kafka(stack),
    ...extra,
  });
  cdk.Validations.of(cdkApp).addPlugins(new AwsSolutionsChecks(cdkApp));
  try {
    cdkApp.synth();
    return [];
  } catch (error) {
    const reportFile = path.join(outdir, 'validation-report.json');
    if (!fs.existsSync(reportFile)) throw error;
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as ValidationReport;
    return report.pluginReports.flatMap((plugin) => (plugin.violations ?? []).flatMap((v) =>
      (v.violatingConstructs ?? [{}]).map((c) => `${v.ruleName} at ${c.constructPath ?? '?'}`)));
  }
}

describe('cdk-nag AwsSolutions', () => {
  it('finds nothing the construct does not fix or acknowledge with a reason, with the defaults and SCRAM', () => {
    expect(findings((stack) => ({
      kafka: { brokers: ['b-1.kafka.example.com:9096'], scramSecret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'KafkaSecret', SECRET_ARN) },
    }))).toEqual([]);
  });

  it('finds nothing either with MSK IAM auth in an imported VPC', () => {
    expect(findings((stack) => ({
      kafka: { mskClusterArn: MSK_ARN, brokers: ['b-1.prod.kafka.eu-west-1.amazonaws.com:9098'] },
      vpc: ec2.Vpc.fromVpcAttributes(stack, 'Vpc', { vpcId: 'vpc-0a1b2c3d4e5f60718', availabilityZones: ['eu-west-1a', 'eu-west-1b'], privateSubnetIds: ['subnet-0aaaaaaaaaaaaaaa1', 'subnet-0bbbbbbbbbbbbbbb2'] }),
    }))).toEqual([]);
  });

  it('finds nothing either with the live WebSocket API and its JWT authorizer', () => {
    expect(findings((stack) => ({
      kafka: { brokers: ['b-1.kafka.example.com:9096'], scramSecret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'KafkaSecret', SECRET_ARN) },
    }), { app: liveApp, appModule: 'test/cdk/fixtures/live-app.ts', live: { auth: { jwt: { issuer: 'https://auth.example.com/', audience: 'gym-web' } } } })).toEqual([]);
  });
});
