import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ArnFormat, CfnOutput, Stack, Token, Validations, type CfnElement } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import { WebSocketIamAuthorizer, WebSocketLambdaAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { WebSocketLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { Construct } from 'constructs';
import { ENV, LIVE_FUNCTIONS, TABLE_INDEXES } from '../../sdk/contract/index.ts';
import { DeploymentError } from './errors.ts';

/** How connections to the live WebSocket API authenticate (`$connect`). */
export type TributaryLiveAuth =
  /**
   * A JWT in the `token` query parameter, verified by a Lambda REQUEST authorizer against the
   * issuer's JWKS: `iss` must be `issuer` and `aud` must hold `audience`.
   */
  | { readonly jwt: { readonly issuer: string; readonly audience: string; readonly jwksUrl?: string } }
  /** SigV4-signed connections (IAM): callers need `execute-api:Invoke` on the API's `$connect`. */
  | { readonly iam: true };

/** Live subscriptions of {@link TributaryAppProps}: the WebSocket API in front of the live views. */
export interface TributaryLiveProps {
  /** Who may connect. */
  readonly auth: TributaryLiveAuth;
  /**
   * Stage of the WebSocket API (the last segment of its URL).
   * @default 'live'
   */
  readonly stageName?: string;
}

/** The live API's stage when none is named. */
export const DEFAULT_LIVE_STAGE = 'live';

/**
 * The views table's live rows (connections and subscriptions, docs/architecture.md "Storage
 * layout"): every partition key starts `live#`. The live functions may write these and no other rows.
 */
const LIVE_LEADING_KEYS = 'live#*';

/** What each live function may do on the live rows, and nothing more. */
const LIVE_ROW_ACTIONS: Readonly<Record<'connect' | 'disconnect' | 'subscribe' | 'fanout', readonly string[]>> = {
  // Records the connection and its principal.
  connect: ['dynamodb:PutItem'],
  // Reads the connection's subscription list and deletes it all.
  disconnect: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'],
  // Reads the connection's principal, writes and deletes subscriptions.
  subscribe: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'],
  // Finds the subscriptions of a changed key; deletes those of a gone (410) connection.
  fanout: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem'],
};
/** The subscribe function reads view items for snapshots (get, getMany, a prefix query on the key index). */
const VIEW_READ_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'];

/** Resolved live props. */
export interface ResolvedLiveProps {
  readonly auth: TributaryLiveAuth;
  readonly stageName: string;
}

/**
 * Validates `live` against the app: a live view needs the API, and the API needs a live view
 * (a `live` prop for an app without one would deploy an API nobody can subscribe through).
 */
export function resolveLiveProps(live: TributaryLiveProps | undefined, liveViews: readonly string[], appName: string): ResolvedLiveProps | undefined {
  if (live === undefined) {
    if (liveViews.length === 0) return undefined;
    throw new DeploymentError(
      'INVALID_PROPS',
      `TributaryApp: app "${appName}" has live views (${liveViews.join(', ')}) but no \`live\` prop; pass live: { auth: { jwt: { issuer, audience } } } or live: { auth: { iam: true } }`,
      { prop: 'live' },
    );
  }
  if (liveViews.length === 0) {
    throw new DeploymentError(
      'INVALID_PROPS',
      `TributaryApp: \`live\` is set but app "${appName}" has no live view; make a view live (defineView({ live: true })) or drop the prop`,
      { prop: 'live' },
    );
  }
  const auth = live.auth as Partial<{ jwt: { issuer?: unknown; audience?: unknown; jwksUrl?: unknown }; iam: unknown }> | undefined;
  if (auth?.jwt !== undefined && auth.iam === undefined) {
    const { issuer, audience, jwksUrl } = auth.jwt;
    if (typeof issuer !== 'string' || !/^https:\/\/[^\s/]+/.test(issuer)) {
      throw new DeploymentError('INVALID_PROPS', `TributaryApp: live.auth.jwt.issuer must be an https:// URL (the JWT's \`iss\`), received ${JSON.stringify(issuer)}`, { prop: 'live.auth.jwt.issuer' });
    }
    if (typeof audience !== 'string' || audience.length === 0) {
      throw new DeploymentError('INVALID_PROPS', `TributaryApp: live.auth.jwt.audience must be a non-empty string (the JWT's \`aud\`), received ${JSON.stringify(audience)}`, { prop: 'live.auth.jwt.audience' });
    }
    if (jwksUrl !== undefined && (typeof jwksUrl !== 'string' || !jwksUrl.startsWith('https://'))) {
      throw new DeploymentError('INVALID_PROPS', `TributaryApp: live.auth.jwt.jwksUrl must be an https:// URL, received ${JSON.stringify(jwksUrl)}`, { prop: 'live.auth.jwt.jwksUrl' });
    }
  } else if (!(auth?.iam === true && auth.jwt === undefined)) {
    throw new DeploymentError(
      'INVALID_PROPS',
      `TributaryApp: live.auth must be { jwt: { issuer, audience } } or { iam: true }, received ${JSON.stringify(live.auth)}`,
      { prop: 'live.auth' },
    );
  }
  const stageName = live.stageName ?? DEFAULT_LIVE_STAGE;
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(stageName)) {
    throw new DeploymentError('INVALID_PROPS', `TributaryApp: live.stageName must be 1-128 letters, digits, _ or -, received ${JSON.stringify(stageName)}`, { prop: 'live.stageName' });
  }
  return { auth: live.auth, stageName };
}

/**
 * The entry of a live Lambda function in this package: `live/handlers/<name>.ts` in the
 * sources, `.js` in the built package (`dist/`), beside this module's own tree either way.
 */
export function liveHandlerEntry(name: 'authorizer' | 'connect' | 'disconnect' | 'subscribe' | 'fanout'): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const extension of ['.ts', '.js']) {
    const entry = path.resolve(here, '..', '..', 'live', 'handlers', `${name}${extension}`);
    if (fs.existsSync(entry)) return entry;
  }
  throw new DeploymentError('INVALID_PROPS', `TributaryApp: the live handler ${name} is missing from the package (looked in ${path.resolve(here, '..', '..', 'live', 'handlers')}); reinstall tributary`, { prop: 'live' });
}

/** What {@link LiveApi} needs of the construct that owns it. */
export interface LiveApiProps {
  readonly config: ResolvedLiveProps;
  readonly appName: string;
  /** Absolute path of the app module: the subscribe function bundles it (the views' `authorize`). */
  readonly appModulePath: string;
  readonly table: dynamodb.ITable;
  /** Creates a function with its own role and log group, bundled as every function of the app. */
  readonly createFunction: (name: string, entry: string, options: { environment: Record<string, string>; esbuildArgs?: Record<string, string> }) => nodejs.NodejsFunction;
}

/**
 * The API Gateway WebSocket API of live subscriptions: routes `$connect`, `$disconnect`,
 * `subscribe` and `unsubscribe` on the live functions, an authorizer on `$connect` (a Lambda
 * REQUEST authorizer checking a JWT, or IAM), the fan-out function the engine invokes as the live
 * views' trigger, and least-privilege permissions: the live rows of the table only (leading-key
 * condition), `execute-api:ManageConnections` on this stage's `@connections` only.
 */
export class LiveApi extends Construct {
  readonly api: apigwv2.WebSocketApi;
  readonly stage: apigwv2.WebSocketStage;
  /** The live functions by logical name (`LIVE_FUNCTIONS`). */
  readonly functions: Readonly<Record<string, nodejs.NodejsFunction>>;
  /** The fan-out function: the trigger function of every live view. */
  readonly fanout: nodejs.NodejsFunction;

  constructor(scope: Construct, id: string, props: LiveApiProps) {
    super(scope, id);
    const { config, table } = props;
    const stack = Stack.of(this);
    const base = { [ENV.table]: table.tableName };

    // The API first, its stage's management endpoint is the functions' TRIBUTARY_LIVE_ENDPOINT.
    const connect = props.createFunction(LIVE_FUNCTIONS.connect, liveHandlerEntry('connect'), { environment: base });
    const authorizer =
      'jwt' in config.auth
        ? new WebSocketLambdaAuthorizer(
            'LiveAuthorizer',
            props.createFunction(LIVE_FUNCTIONS.authorizer, liveHandlerEntry('authorizer'), {
              environment: {
                [ENV.liveJwtIssuer]: config.auth.jwt.issuer,
                [ENV.liveJwtAudience]: config.auth.jwt.audience,
                ...(config.auth.jwt.jwksUrl !== undefined ? { [ENV.liveJwksUrl]: config.auth.jwt.jwksUrl } : {}),
              },
            }),
            { identitySource: ['route.request.querystring.token'] },
          )
        : new WebSocketIamAuthorizer();
    this.api = new apigwv2.WebSocketApi(this, 'Api', {
      apiName: `${props.appName}-live`,
      description: `Tributary app ${props.appName}: live subscriptions to views`,
      routeSelectionExpression: '$request.body.action',
      connectRouteOptions: { integration: new WebSocketLambdaIntegration('Connect', connect), authorizer },
    });
    this.stage = new apigwv2.WebSocketStage(this, 'Stage', { webSocketApi: this.api, stageName: config.stageName, autoDeploy: true });
    const managementEndpoint = this.stage.callbackUrl;

    const disconnect = props.createFunction(LIVE_FUNCTIONS.disconnect, liveHandlerEntry('disconnect'), { environment: base });
    const subscribe = props.createFunction(LIVE_FUNCTIONS.subscribe, liveHandlerEntry('subscribe'), {
      environment: { ...base, [ENV.liveEndpoint]: managementEndpoint },
      // subscribe.ts imports the app (each view's `authorize`) through this bare specifier.
      esbuildArgs: { '--alias:tributary-live-app': props.appModulePath },
    });
    this.fanout = props.createFunction(LIVE_FUNCTIONS.fanout, liveHandlerEntry('fanout'), { environment: { ...base, [ENV.liveEndpoint]: managementEndpoint } });
    this.api.addRoute('$disconnect', { integration: new WebSocketLambdaIntegration('Disconnect', disconnect) });
    this.api.addRoute('subscribe', { integration: new WebSocketLambdaIntegration('Subscribe', subscribe) });
    this.api.addRoute('unsubscribe', { integration: new WebSocketLambdaIntegration('Unsubscribe', subscribe) });
    this.functions = {
      [LIVE_FUNCTIONS.connect]: connect,
      [LIVE_FUNCTIONS.disconnect]: disconnect,
      [LIVE_FUNCTIONS.subscribe]: subscribe,
      [LIVE_FUNCTIONS.fanout]: this.fanout,
    };

    const liveRows = (actions: readonly string[]) =>
      new iam.PolicyStatement({
        actions: [...actions],
        resources: [table.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': [LIVE_LEADING_KEYS] } },
      });
    connect.addToRolePolicy(liveRows(LIVE_ROW_ACTIONS.connect));
    disconnect.addToRolePolicy(liveRows(LIVE_ROW_ACTIONS.disconnect));
    subscribe.addToRolePolicy(liveRows(LIVE_ROW_ACTIONS.subscribe));
    this.fanout.addToRolePolicy(liveRows(LIVE_ROW_ACTIONS.fanout));
    subscribe.addToRolePolicy(
      new iam.PolicyStatement({
        actions: VIEW_READ_ACTIONS,
        resources: [table.tableArn, `${table.tableArn}/index/${TABLE_INDEXES.byKey.indexName}`],
      }),
    );
    // Posting to this stage's connections: their ids exist only at run time, so the resource
    // ends in `@connections/*`, under this API and stage and the POST method alone.
    const postToConnections = stack.formatArn({
      service: 'execute-api',
      resource: this.api.apiId,
      resourceName: `${config.stageName}/POST/@connections/*`,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    // cdk-nag names this finding by the resource as it renders it: pseudo parameters and the
    // API's id as <AWS::Region>, <LogicalId>, literal values as they are.
    const shown = (value: string, pseudo: string) => (Token.isUnresolved(value) ? `<${pseudo}>` : value);
    const partition = Token.isUnresolved(stack.region) ? '<AWS::Partition>' : stack.partition;
    const nagResource =
      `arn:${partition}:execute-api:${shown(stack.region, 'AWS::Region')}:${shown(stack.account, 'AWS::AccountId')}:` +
      `<${stack.getLogicalId(this.api.node.defaultChild as CfnElement)}>/${config.stageName}/POST/@connections/*`;
    for (const fn of [subscribe, this.fanout]) {
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['execute-api:ManageConnections'], resources: [postToConnections] }));
      Validations.of(fn.role!).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${nagResource}]`,
        reason: 'execute-api:ManageConnections is scoped to this API, stage and POST on @connections; connection ids exist only at run time',
      });
    }
    Validations.of(this.stage).acknowledge({
      id: 'AwsSolutions-APIG1',
      reason: 'Access logging of an API Gateway stage needs the account-wide API Gateway CloudWatch role, which belongs to the account owner; every route runs a function that logs to its own log group',
    });
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: 'A WebSocket API authorizes on $connect (the authorizer); later routes run on the authorized connection, and the subscribe function authorizes each key per view',
    });

    new CfnOutput(scope, 'LiveUrl', { value: this.stage.url, description: 'WebSocket URL of live subscriptions (createLiveClient({ url }))' });
    new CfnOutput(scope, 'LiveManagementEndpoint', { value: managementEndpoint, description: 'The @connections management API (TRIBUTARY_LIVE_ENDPOINT of the live functions)' });
  }
}
