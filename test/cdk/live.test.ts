/**
 * The WebSocket API of live subscriptions in the synthesized template: its routes on the live
 * functions, the authorizer of `$connect` (a Lambda REQUEST authorizer checking a JWT, or IAM),
 * the fan-out function as the engine's trigger target, and least privilege (the table's `live#`
 * rows through a leading-key condition, `@connections` of this API's stage only, no wildcard).
 */
import * as cdk from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { TributaryApp, type TributaryAppProps } from '../../cdk/index.ts';
import { LIVE_FUNCTIONS } from '../../sdk/contract/index.ts';
import { app as plainApp } from './fixtures/app.ts';
import { app } from './fixtures/live-app.ts';
import { FIXTURE_HANDLERS_DIR, SKIP_BUNDLING, cdkJsonContext, findIamWildcards } from './helpers.ts';

const ISSUER = 'https://auth.example.com/';
const AUDIENCE = 'gym-web';

function synth(props: Partial<TributaryAppProps>) {
  const cdkApp = new cdk.App({ context: { ...cdkJsonContext(), ...SKIP_BUNDLING } });
  const stack = new cdk.Stack(cdkApp, 'LiveStack', { env: { account: '123456789012', region: 'eu-west-1' } });
  const tributary = new TributaryApp(stack, 'Tributary', {
    app,
    appModule: 'test/cdk/fixtures/live-app.ts',
    handlersDir: FIXTURE_HANDLERS_DIR,
    engineDockerfile: 'Dockerfile',
    partitionCount: 3,
    kafka: { brokers: ['b-1.kafka.example.com:9092'], auth: 'none' },
    ...props,
  });
  return { stack, tributary, template: Template.fromStack(stack) };
}

type Resources = Record<string, { Type: string; Properties: Record<string, any> }>;
const ofType = (template: Template, type: string): Array<[string, Record<string, any>]> =>
  Object.entries(template.toJSON().Resources as Resources).filter(([, r]) => r.Type === type).map(([id, r]) => [id, r.Properties]);

/** The statements of the role of a function, found by the function's logical-id prefix. */
function statementsOfFunction(template: Template, functionName: string): Array<{ Action: string | string[]; Resource: unknown; Condition?: any }> {
  const resources = template.toJSON().Resources as Resources;
  const [, fn] = Object.entries(resources).find(([id, r]) => r.Type === 'AWS::Lambda::Function' && id.includes(functionName.replace(/-/g, ''))) ?? [];
  if (fn === undefined) throw new Error(`no function ${functionName}`);
  const role = fn.Properties.Role['Fn::GetAtt'][0] as string;
  return Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy' && r.Properties.Roles.some((x: any) => x.Ref === role))
    .flatMap((r) => r.Properties.PolicyDocument.Statement);
}

describe('live subscriptions with JWT connections', () => {
  let template: Template;
  let tributary: TributaryApp;
  let stack: cdk.Stack;
  beforeAll(() => {
    ({ template, tributary, stack } = synth({ live: { auth: { jwt: { issuer: ISSUER, audience: AUDIENCE } } } }));
  }, 120_000);

  it('routes $connect, $disconnect, subscribe and unsubscribe by the frame\u2019s action to the live functions', () => {
    template.hasResourceProperties('AWS::ApiGatewayV2::Api', { ProtocolType: 'WEBSOCKET', RouteSelectionExpression: '$request.body.action' });
    const routes = Object.fromEntries(ofType(template, 'AWS::ApiGatewayV2::Route').map(([, p]) => [p.RouteKey, p]));
    expect(Object.keys(routes).sort()).toEqual(['$connect', '$disconnect', 'subscribe', 'unsubscribe']);
    const integrations = Object.fromEntries(ofType(template, 'AWS::ApiGatewayV2::Integration').map(([id, p]) => [id, JSON.stringify(p.IntegrationUri)]));
    const target = (routeKey: string) => integrations[(routes[routeKey]!.Target['Fn::Join'][1][1].Ref as string)]!;
    const fnId = (name: string) => stack.getLogicalId(tributary.functions[name]!.node.defaultChild as cdk.CfnElement);
    expect(target('$connect')).toContain(fnId(LIVE_FUNCTIONS.connect));
    expect(target('$disconnect')).toContain(fnId(LIVE_FUNCTIONS.disconnect));
    expect(target('subscribe')).toContain(fnId(LIVE_FUNCTIONS.subscribe));
    expect(target('unsubscribe')).toContain(fnId(LIVE_FUNCTIONS.subscribe));
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', { StageName: 'live', AutoDeploy: true });
    expect(Object.keys(template.toJSON().Outputs).filter((name) => name.includes('LiveUrl'))).toHaveLength(1);
  });

  it('authorizes $connect with a REQUEST authorizer that checks the token against the issuer and audience', () => {
    const connect = ofType(template, 'AWS::ApiGatewayV2::Route').find(([, p]) => p.RouteKey === '$connect')![1];
    expect(connect.AuthorizationType).toBe('CUSTOM');
    const authorizers = ofType(template, 'AWS::ApiGatewayV2::Authorizer');
    expect(authorizers).toHaveLength(1);
    expect(authorizers[0]![1]).toMatchObject({ AuthorizerType: 'REQUEST', IdentitySource: ['route.request.querystring.token'] });
    expect(connect.AuthorizerId.Ref).toBe(authorizers[0]![0]);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ TRIBUTARY_LIVE_JWT_ISSUER: ISSUER, TRIBUTARY_LIVE_JWT_AUDIENCE: AUDIENCE }) },
    });
    // Every other route runs on the authorized connection (API Gateway authorizes WebSockets on $connect only).
    for (const [, route] of ofType(template, 'AWS::ApiGatewayV2::Route')) if (route.RouteKey !== '$connect') expect(route.AuthorizationType ?? 'NONE').toBe('NONE');
  });

  it('makes the fan-out function the engine\u2019s trigger target, with invoke rights on it alone', () => {
    const fanout = tributary.functions[LIVE_FUNCTIONS.fanout]!;
    expect(fanout).toBeDefined();
    const engineStatements = ofType(template, 'AWS::IAM::Policy')
      .flatMap(([, p]) => p.PolicyDocument.Statement as Array<{ Action: unknown; Resource: unknown }>)
      .filter((s) => s.Action === 'lambda:InvokeFunction');
    const invoked = JSON.stringify(engineStatements.map((s) => s.Resource));
    expect(invoked).toContain(stack.getLogicalId(fanout.node.defaultChild as cdk.CfnElement));
    // The engine's TRIBUTARY_FUNCTION_NAMES maps the fan-out's logical name to the deployed one.
    const container = ofType(template, 'AWS::ECS::TaskDefinition')[0]![1].ContainerDefinitions[0];
    const names = container.Environment.find((e: { Name: string }) => e.Name === 'TRIBUTARY_FUNCTION_NAMES').Value;
    expect(JSON.stringify(names)).toContain(LIVE_FUNCTIONS.fanout);
    // The subscribe and fan-out functions reach the management API of this stage (its callback URL).
    const functions = template.toJSON().Resources as Resources;
    const apiId = stack.getLogicalId(tributary.live!.api.node.defaultChild as cdk.CfnElement);
    for (const name of [LIVE_FUNCTIONS.subscribe, LIVE_FUNCTIONS.fanout]) {
      const id = stack.getLogicalId(tributary.functions[name]!.node.defaultChild as cdk.CfnElement);
      const endpoint = JSON.stringify(functions[id]!.Properties.Environment.Variables.TRIBUTARY_LIVE_ENDPOINT);
      expect(endpoint, name).toContain('https://');
      expect(endpoint, name).toContain(apiId);
      expect(endpoint, name).toContain('/live"');
    }
  });

  it('grants the live functions only the live# rows and this stage\u2019s @connections, with no wildcard', () => {
    expect(findIamWildcards(template)).toEqual([]);
    const leadingLive = { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['live#*'] } };
    for (const [name, actions] of [
      [LIVE_FUNCTIONS.connect, ['dynamodb:PutItem']],
      [LIVE_FUNCTIONS.disconnect, ['dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:Query']],
      [LIVE_FUNCTIONS.fanout, ['dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:Query']],
      [LIVE_FUNCTIONS.subscribe, ['dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query']],
    ] as const) {
      const statements = statementsOfFunction(template, name);
      const writes = statements.filter((s) => [s.Action].flat().some((a) => /dynamodb:(Put|Delete|BatchWrite)/.test(a)));
      expect(writes.length, name).toBeGreaterThan(0);
      for (const statement of writes) expect(statement.Condition, name).toEqual(leadingLive);
      const live = statements.find((s) => JSON.stringify(s.Condition) === JSON.stringify(leadingLive))!;
      expect([live.Action].flat().sort(), name).toEqual([...actions]);
    }
    // Only subscribe reads view items (its snapshots), unconditionally but read-only.
    const reads = statementsOfFunction(template, LIVE_FUNCTIONS.subscribe).filter((s) => s.Condition === undefined && [s.Action].flat().some((a) => a.startsWith('dynamodb:')));
    expect(reads.map((s) => [s.Action].flat().sort())).toEqual([['dynamodb:BatchGetItem', 'dynamodb:GetItem', 'dynamodb:Query']]);
    for (const name of [LIVE_FUNCTIONS.connect, LIVE_FUNCTIONS.disconnect, LIVE_FUNCTIONS.fanout]) {
      expect(statementsOfFunction(template, name).filter((s) => s.Condition === undefined && [s.Action].flat().some((a) => a.startsWith('dynamodb:'))), name).toEqual([]);
    }
    // execute-api:ManageConnections: subscribe and fan-out only, on this API's stage, POST on @connections.
    const apiId = stack.getLogicalId(tributary.live!.api.node.defaultChild as cdk.CfnElement);
    for (const name of Object.values(LIVE_FUNCTIONS)) {
      if (name === LIVE_FUNCTIONS.authorizer) continue;
      const manage = statementsOfFunction(template, name).filter((s) => [s.Action].flat().includes('execute-api:ManageConnections'));
      if (name !== LIVE_FUNCTIONS.subscribe && name !== LIVE_FUNCTIONS.fanout) {
        expect(manage, name).toEqual([]);
        continue;
      }
      expect(manage, name).toHaveLength(1);
      expect(manage[0]!.Resource).toEqual({
        'Fn::Join': ['', ['arn:aws:execute-api:eu-west-1:123456789012:', { Ref: apiId }, '/live/POST/@connections/*']],
      });
    }
  });

});

describe('live subscriptions with IAM connections', () => {
  it('authorizes $connect with IAM and deploys no authorizer function', () => {
    const { template, tributary } = synth({ live: { auth: { iam: true }, stageName: 'v1' } });
    const connect = ofType(template, 'AWS::ApiGatewayV2::Route').find(([, p]) => p.RouteKey === '$connect')![1];
    expect(connect.AuthorizationType).toBe('AWS_IAM');
    expect(ofType(template, 'AWS::ApiGatewayV2::Authorizer')).toEqual([]);
    expect(tributary.functions[LIVE_FUNCTIONS.authorizer]).toBeUndefined();
    template.hasResourceProperties('AWS::ApiGatewayV2::Stage', { StageName: 'v1' });
    expect(findIamWildcards(template)).toEqual([]);
  });
});

describe('live props', () => {
  const code = (props: Partial<TributaryAppProps>) => {
    try {
      synth(props);
    } catch (error) {
      return [(error as { code?: string }).code, (error as Error).message];
    }
    return undefined;
  };
  it('refuses an app with live views and no live prop, and a live prop without live views', () => {
    expect(code({})?.[0]).toBe('INVALID_PROPS');
    expect(code({})?.[1]).toContain('attendance');
    expect(code({ app: plainApp, appModule: 'test/cdk/fixtures/app.ts', live: { auth: { iam: true } } })?.[0]).toBe('INVALID_PROPS');
  });
  it('refuses a malformed JWT issuer, audience or auth', () => {
    expect(code({ live: { auth: { jwt: { issuer: 'http://insecure.example.com', audience: AUDIENCE } } } })?.[1]).toContain('issuer must be an https:// URL');
    expect(code({ live: { auth: { jwt: { issuer: ISSUER, audience: '' } } } })?.[1]).toContain('audience');
    expect(code({ live: { auth: {} as never } })?.[1]).toContain('live.auth must be');
    expect(code({ live: { auth: { iam: true }, stageName: 'no spaces' } })?.[1]).toContain('stageName');
  });
});
