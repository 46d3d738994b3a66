/**
 * Shared pieces of the CDK tests: the feature flags of cdk.json (so tests synthesize what
 * `npx cdk synth` does) and an IAM walker that finds wildcards in synthesized policies.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Template } from 'aws-cdk-lib/assertions';

/** Repository root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Fixture paths, relative to the repository root as TributaryApp expects. */
export const FIXTURE_APP_MODULE = 'test/cdk/fixtures/app.ts';
export const FIXTURE_HANDLERS_DIR = 'test/cdk/fixtures/handlers';

/** The `context` of cdk.json: feature flags and `tributary:*` defaults. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> };
  return cdkJson.context;
}

/** Context that skips asset bundling (esbuild) for every stack: for tests that only read IAM/config. */
export const SKIP_BUNDLING = { 'aws:cdk:bundling-stacks': [] } as const;

/**
 * Wildcards AWS itself requires, each with the reason. An action listed here may use `*` as its
 * resource; nothing else may.
 */
export const WILDCARD_ALLOWLIST: Readonly<Record<string, string>> = {
  // Docker login to ECR has no resource-level permissions: the AWS-documented resource is "*".
  // The pull actions themselves (BatchGetImage, ...) are scoped to the CDK assets repository.
  'ecr:GetAuthorizationToken': 'ECR auth tokens are account-wide; IAM accepts only Resource "*"',
  // Live subscriptions post to connections whose ids exist only at run time; the resource is this
  // API's stage and the POST method on @connections (test/cdk/live.test.ts asserts it exactly).
  'execute-api:ManageConnections': 'connection ids are created at run time: <api>/<stage>/POST/@connections/*',
};

/**
 * Roles allowed to carry AWS managed policies, by logical-id prefix, with the reason. Managed
 * policies are not in the template, so the walker cannot see their statements; each entry
 * names what the policy grants.
 */
export const MANAGED_POLICY_ALLOWLIST: Readonly<Record<string, string>> = {
  // CDK's own provider behind Vpc `restrictDefaultSecurityGroup` (feature flag
  // @aws-cdk/aws-ec2:restrictDefaultSecurityGroup): it strips the default security group's rules
  // once at deploy time. It gets AWSLambdaBasicExecutionRole (logs:CreateLogGroup/Stream/PutLogEvents
  // on "*") because Lambda creates its log group at first run. Present only when the construct
  // creates the VPC.
  CustomVpcRestrictDefaultSGCustomResourceProvider: 'CDK default-security-group restrictor: AWSLambdaBasicExecutionRole',
};

/** One wildcard the walker found. */
export interface WildcardFinding {
  readonly resource: string;
  readonly what: 'action' | 'resource' | 'managed-policy' | 'not-action';
  readonly detail: string;
}

function stringLeaves(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const v of value) stringLeaves(v, into);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) stringLeaves(v, into);
  return into;
}

function asArray<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/**
 * Walks every IAM statement of the template (AWS::IAM::Policy, inline role policies, managed
 * policies created in the stack) and every role's managed policy ARNs; returns each wildcard
 * action, each `*` in a resource's literal text not covered by {@link WILDCARD_ALLOWLIST}, and each
 * managed policy on a role outside {@link MANAGED_POLICY_ALLOWLIST}.
 */
export function findIamWildcards(template: Template): WildcardFinding[] {
  const findings: WildcardFinding[] = [];
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, any> }>;
  const documents: Array<[string, any]> = [];
  for (const [id, resource] of Object.entries(resources)) {
    const props = resource.Properties ?? {};
    if (resource.Type === 'AWS::IAM::Policy' || resource.Type === 'AWS::IAM::ManagedPolicy') {
      documents.push([id, props.PolicyDocument]);
    }
    if (resource.Type === 'AWS::IAM::Role') {
      for (const policy of asArray(props.Policies)) documents.push([`${id}/${policy.PolicyName}`, policy.PolicyDocument]);
      const managed = asArray(props.ManagedPolicyArns);
      if (managed.length > 0 && !Object.keys(MANAGED_POLICY_ALLOWLIST).some((prefix) => id.startsWith(prefix))) {
        findings.push({ resource: id, what: 'managed-policy', detail: JSON.stringify(managed) });
      }
    }
  }
  for (const [id, document] of documents) {
    for (const statement of asArray(document?.Statement)) {
      if (statement.Effect !== 'Allow') continue;
      if (statement.NotAction !== undefined || statement.NotResource !== undefined) {
        findings.push({ resource: id, what: 'not-action', detail: JSON.stringify(statement) });
      }
      const actions = asArray<string>(statement.Action);
      for (const action of actions) {
        if (action.includes('*')) findings.push({ resource: id, what: 'action', detail: action });
      }
      const literal = stringLeaves(statement.Resource);
      if (literal.some((text) => text.includes('*'))) {
        const uncovered = actions.filter((action) => !(action in WILDCARD_ALLOWLIST));
        if (uncovered.length > 0) {
          findings.push({ resource: id, what: 'resource', detail: `${uncovered.join(',')} on ${JSON.stringify(statement.Resource)}` });
        }
      }
    }
  }
  return findings;
}

/** All statements of the policies attached to the role with this logical id. */
export function statementsOfRole(template: Template, roleLogicalId: string): Array<{ Action: string | string[]; Resource: unknown; Effect: string; Condition?: unknown }> {
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, any> }>;
  const statements = [];
  for (const resource of Object.values(resources)) {
    if (resource.Type !== 'AWS::IAM::Policy') continue;
    const roles = asArray(resource.Properties?.Roles);
    if (roles.some((role: any) => role?.Ref === roleLogicalId)) statements.push(...asArray(resource.Properties?.PolicyDocument?.Statement));
  }
  return statements;
}

/** Flattened action list of statements. */
export function actionsOf(statements: Array<{ Action: string | string[] }>): string[] {
  return statements.flatMap((s) => asArray(s.Action)).sort();
}
