import * as path from 'node:path';
import * as fs from 'node:fs';
import { CfnOutput, Duration, Fn, Stack, Token, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ENV, IDEMPOTENCY_PK, buildGroupIds, METRIC, METRICS_NAMESPACE, TABLE_INDEXES, TABLE_KEY_SCHEMA, TABLE_TTL_ATTRIBUTE } from '../../sdk/contract/index.ts';
import { DeploymentError } from './errors.ts';
import { findHandlers } from './handlers.ts';
import { LiveApi } from './live.ts';
import { ENGINE_HEALTH_PORT, resolveProps, type ResolvedProps, type TributaryAppProps } from './props.ts';

/** Never part of the engine image's build context: installed or generated, not sources. */
const ENGINE_CONTEXT_EXCLUDE = ['node_modules', '**/node_modules', 'cdk.out', '**/cdk.out', '.git', '.tributary', 'dist', 'coverage', '*.log'];

/**
 * What the engine and the functions may do on the views table: `grantReadData` /
 * `grantReadWriteData` without the stream actions (the table has no stream), granted on the
 * table and its two indexes by name instead of CDK's `index/*`.
 */
const TABLE_READ_ACTIONS = ['dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:GetItem', 'dynamodb:Scan', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable'];
const TABLE_WRITE_ACTIONS = ['dynamodb:BatchWriteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'];

/** The CDK attribute type of a key attribute type of the shared contract. */
function attributeType(type: 'S' | 'N'): dynamodb.AttributeType {
  return type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER;
}

/** CloudWatch namespace of the engine's EMF metrics, from the shared contract. */
export { METRICS_NAMESPACE };

/**
 * Deploys one Tributary app: the views table, the engine as an ECS Fargate service scaled on
 * consumer lag, one Lambda function per handler file, least-privilege roles, alarms and log groups.
 *
 * @example
 * import { app } from '../functions/app.ts';
 * new TributaryApp(stack, 'Gym', {
 *   app,
 *   partitionCount: 6,
 *   kafka: { mskClusterArn: 'arn:aws:kafka:eu-west-1:123456789012:cluster/prod/1a2b3c4d-...', brokers: ['b-1.prod.kafka.eu-west-1.amazonaws.com:9098'] },
 * });
 */
export class TributaryApp extends Construct {
  /** The views table (pk/sk strings, the KEYS_ONLY indexes `byKey` and `closing`, TTL `ttl`, on-demand, PITR). */
  readonly table: dynamodb.Table;
  /** The ECS cluster running the engine. */
  readonly cluster: ecs.ICluster;
  /** The engine service. */
  readonly service: ecs.FargateService;
  /** The engine task definition; its `taskRole` holds the engine's data-plane permissions. */
  readonly taskDefinition: ecs.FargateTaskDefinition;
  /** The engine's log group. */
  readonly engineLogGroup: logs.LogGroup;
  /** Security group of the engine tasks; allow it into the Kafka brokers. */
  readonly engineSecurityGroup: ec2.ISecurityGroup;
  /** Deployed functions by logical name (the handler file name). */
  readonly functions: Readonly<Record<string, nodejs.NodejsFunction>>;
  /** Alarms: consumer lag, dead letters, engine tasks missing, and one per function on errors. */
  readonly alarms: readonly cloudwatch.Alarm[];
  /** The WebSocket API of live subscriptions; undefined for an app without live views. */
  readonly live: LiveApi | undefined;

  constructor(scope: Construct, id: string, props: TributaryAppProps) {
    super(scope, id);
    // Validate everything before creating anything: a wrong prop is a synth error, never a half-built tree.
    const config = resolveProps(props);
    const { app } = config;
    const handlersDir = path.join(config.repoRoot, config.handlersDir);
    const handlers = findHandlers(app, handlersDir, config.handlersDir);
    if (config.engineDockerfile !== undefined) {
      for (const file of [config.engineDockerfile, config.appModule]) {
        if (!fs.existsSync(path.join(config.repoRoot, file))) {
          throw new DeploymentError('INVALID_PROPS', `TributaryApp: ${file} not found in projectRoot ${config.repoRoot}; the engine image is built from it. Fix projectRoot/appModule/engineDockerfile or pass engineImage`, { prop: file === config.appModule ? 'appModule' : 'engineDockerfile' });
        }
      }
    }

    this.table = new dynamodb.Table(this, 'Views', {
      partitionKey: { name: TABLE_KEY_SCHEMA.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: TABLE_KEY_SCHEMA.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE_TTL_ATTRIBUTE,
      removalPolicy: config.tableRemovalPolicy,
    });
    // The key index behind query() and the closing index of final window results (docs/architecture.md, "Storage layout").
    for (const index of Object.values(TABLE_INDEXES)) {
      this.table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey.name, type: attributeType(index.partitionKey.type) },
        sortKey: { name: index.sortKey.name, type: attributeType(index.sortKey.type) },
        projectionType: dynamodb.ProjectionType[index.projection],
      });
    }

    const functions: Record<string, nodejs.NodejsFunction> = {};
    for (const handler of handlers) {
      functions[handler.name] = this.createFunction(config, handler.name, handler.entry);
    }
    this.live = config.live === undefined ? undefined : new LiveApi(this, 'Live', {
      config: config.live,
      appName: app.name,
      appModulePath: path.join(config.repoRoot, config.appModule),
      table: this.table,
      createFunction: (name, entry, options) => this.createFunction(config, name, entry, { viewFunction: false, ...options }),
    });
    // The fan-out is the trigger function of the live views: the engine invokes it like any other.
    if (this.live !== undefined) Object.assign(functions, this.live.functions);
    this.functions = functions;

    const vpc = config.vpc ?? this.createVpc();
    this.engineSecurityGroup = config.securityGroups?.[0] ?? new ec2.SecurityGroup(this, 'EngineSecurityGroup', {
      vpc,
      description: `Tributary engine of app ${app.name}`,
      allowAllOutbound: true,
    });
    const securityGroups = config.securityGroups ? [...config.securityGroups] : [this.engineSecurityGroup];
    if (config.kafka.securityGroup) {
      for (const port of config.kafka.ports) {
        config.kafka.securityGroup.addIngressRule(this.engineSecurityGroup, ec2.Port.tcp(port), `Tributary engine of app ${app.name} to Kafka`);
      }
    }

    // Container Insights publishes RunningTaskCount/DesiredTaskCount, which the engine-tasks alarm reads.
    const cluster = new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });
    this.cluster = cluster;
    this.engineLogGroup = new logs.LogGroup(this, 'EngineLogs', { retention: config.logRetention });
    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'EngineTask', {
      cpu: config.cpu,
      memoryLimitMiB: config.memoryLimitMiB,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });
    const taskRole = this.taskDefinition.taskRole;
    // Checked by cdk-nag's AwsSolutions pack in test/cdk/nag.test.ts; each acknowledgment says why.
    Validations.of(this.taskDefinition).acknowledge({
      id: 'AwsSolutions-ECS2',
      reason: 'The engine container gets only non-secret configuration as environment variables (table, app, brokers, ports); Kafka credentials come from Secrets Manager as ECS secrets',
    });
    Validations.of(this.taskDefinition.obtainExecutionRole()).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'ecr:GetAuthorizationToken (pulling the engine image) has no resource-level permissions: IAM accepts only Resource "*"; the pull actions are scoped to the assets repository',
    });

    // The engine invokes only the functions its triggers name.
    const functionNames: Record<string, string> = {};
    for (const name of app.functions) {
      const fn = functions[name]!;
      // The unqualified ARN only: the engine invokes $LATEST by name. fn.grantInvoke() would add
      // `<arn>:*` (every version and alias), more than the engine uses.
      iam.Grant.addToPrincipal({ grantee: taskRole, actions: ['lambda:InvokeFunction'], resourceArns: [fn.functionArn] });
      functionNames[name] = fn.functionName;
    }
    this.grantTable(taskRole, [...TABLE_READ_ACTIONS, ...TABLE_WRITE_ACTIONS]);
    if (config.kafka.auth === 'msk-iam') this.grantMsk(config, taskRole);

    const secrets: Record<string, ecs.Secret> = {};
    if (config.kafka.scramSecret) {
      secrets.KAFKA_SASL_USERNAME = ecs.Secret.fromSecretsManager(config.kafka.scramSecret, 'username');
      secrets.KAFKA_SASL_PASSWORD = ecs.Secret.fromSecretsManager(config.kafka.scramSecret, 'password');
    }
    this.taskDefinition.addContainer('engine', {
      image: config.engineImage ?? ecs.ContainerImage.fromAsset(config.repoRoot, {
        file: config.engineDockerfile!,
        platform: Platform.LINUX_AMD64,
        buildArgs: { APP_MODULE: config.appModule },
        // The project's own .dockerignore applies too; these never belong in the context (the
        // image installs its dependencies itself), except the Dockerfile when the package ships it.
        exclude: [...ENGINE_CONTEXT_EXCLUDE, `!${config.engineDockerfile!.split(path.sep).join('/')}`],
      }),
      essential: true,
      logging: ecs.LogDrivers.awsLogs({ logGroup: this.engineLogGroup, streamPrefix: 'engine' }),
      environment: {
        [ENV.app]: app.name,
        [ENV.table]: this.table.tableName,
        [ENV.functionNames]: Stack.of(this).toJsonString(functionNames),
        [ENV.groupId]: config.consumerGroup,
        // Informational: the engine takes the topic from the bundled app; this shows operators where
        // poison goes and is the topic the MSK policy lets the engine write.
        [ENV.deadLetterTopic]: config.deadLetterTopic,
        [ENV.healthPort]: String(ENGINE_HEALTH_PORT),
        // Every interface of the task (its own network namespace), also for an engineImage not built
        // from the Dockerfile: outside a container the engine defaults to loopback.
        [ENV.healthHost]: '0.0.0.0',
        [ENV.logLevel]: config.logLevel,
        // A quarter of the task's memory for cached view state (approximate heap bytes); the rest
        // is Node, the Kafka fetch buffers and the batch being folded.
        [ENV.cacheMaxBytes]: String(Math.floor(config.memoryLimitMiB / 4) * 1024 * 1024),
        KAFKA_BROKERS: config.kafka.brokers.join(','),
        KAFKA_AUTH: config.kafka.auth,
        KAFKA_SSL: String(config.kafka.tls),
        AWS_REGION: Stack.of(this).region,
        NODE_OPTIONS: '--enable-source-maps',
      },
      secrets,
      // node:22-slim has no curl; Node's fetch probes the engine's own health endpoint.
      healthCheck: {
        command: ['CMD', 'node', '-e', `fetch('http://127.0.0.1:${ENGINE_HEALTH_PORT}/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))`],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(60),
      },
      // SIGTERM, then this long to finish the batch, commit and leave the group
      // (docs/architecture.md, invariant 7).
      stopTimeout: config.stopTimeout,
    });

    this.service = new ecs.FargateService(this, 'Engine', {
      cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: config.minTasks,
      securityGroups,
      vpcSubnets: config.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      // A new version that keeps failing its health check rolls back instead of replacing healthy tasks.
      circuitBreaker: { enable: true, rollback: true },
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
    });

    const lag = new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: METRIC.consumerLag,
      dimensionsMap: { App: app.name },
      period: Duration.minutes(1),
    });
    // Each task reports the lag summed over its own partitions; the average over tasks is the lag
    // per task, which falls as tasks are added: the shape target tracking needs.
    this.service
      .autoScaleTaskCount({ minCapacity: config.minTasks, maxCapacity: config.maxTasks })
      .scaleToTrackCustomMetric('ConsumerLagScaling', {
        metric: lag.with({ statistic: cloudwatch.Stats.AVERAGE }),
        targetValue: config.targetLagPerTask,
        scaleOutCooldown: Duration.minutes(1),
        // Scaling in rebalances the group; wait longer so lag spikes do not flap the task count.
        scaleInCooldown: Duration.minutes(5),
      });

    this.alarms = this.createAlarms(config, cluster, lag);

    new CfnOutput(this, 'TableName', { value: this.table.tableName, description: 'Views table (TRIBUTARY_TABLE)' });
    new CfnOutput(this, 'EngineServiceName', { value: this.service.serviceName });
    new CfnOutput(this, 'FunctionNames', { value: Stack.of(this).toJsonString(functionNames), description: 'TRIBUTARY_FUNCTION_NAMES of the engine' });
  }

  /**
   * A function with its own role and log group. A view function (a handler of `handlersDir`)
   * reads the table and writes idempotency markers; the live functions get their grants from
   * `LiveApi` instead, and their own environment and esbuild arguments.
   */
  private createFunction(
    config: ResolvedProps,
    name: string,
    entry: string,
    options: { viewFunction: boolean; environment?: Record<string, string>; esbuildArgs?: Record<string, string> } = { viewFunction: true },
  ): nodejs.NodejsFunction {
    const logGroup = new logs.LogGroup(this, `${name}Logs`, { retention: config.logRetention });
    // Own role instead of AWSLambdaBasicExecutionRole, whose logs actions cover every log group (`*`):
    // this one may write to its own log group only.
    const role = new iam.Role(this, `${name}FunctionRole`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Tributary app ${config.app.name}: function ${name}`,
    });
    logGroup.grantWrite(role);
    const fn = new nodejs.NodejsFunction(this, `Function-${name}`, {
      role,
      entry,
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: config.functionMemorySize,
      timeout: config.functionTimeout,
      logGroup,
      projectRoot: config.repoRoot,
      // npm's lockfile when there is one; NodejsFunction finds pnpm's or yarn's itself.
      ...(fs.existsSync(path.join(config.repoRoot, 'package-lock.json')) ? { depsLockFilePath: path.join(config.repoRoot, 'package-lock.json') } : {}),
      environment: {
        [ENV.table]: this.table.tableName,
        [ENV.app]: config.app.name,
        NODE_OPTIONS: '--enable-source-maps',
        ...options.environment,
      },
      bundling: {
        // esbuild is a local devDependency: no Docker needed to bundle.
        forceDockerBundling: false,
        format: nodejs.OutputFormat.ESM,
        target: 'node22',
        sourceMap: true,
        minify: true,
        mainFields: ['module', 'main'],
        // Some CommonJS dependencies call require() at run time; give them one inside the ESM bundle.
        banner: "import { createRequire as __tributaryCreateRequire } from 'node:module'; const require = __tributaryCreateRequire(import.meta.url);",
        ...(options.esbuildArgs !== undefined ? { esbuildArgs: options.esbuildArgs } : {}),
      },
    });
    Validations.of(fn).acknowledge({
      id: 'AwsSolutions-L1',
      reason: 'Functions run Node.js 22, the runtime the engine image and the test suite use; a newer runtime is a deliberate upgrade, not a default that moves under a deployed app',
    });
    if (!options.viewFunction) return fn;
    this.grantTable(role, TABLE_READ_ACTIONS);
    // The SDK's once() keeps idempotency markers in the views table under their own partition key;
    // writes are allowed there and nowhere else, so a function can never alter view state.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:PutItem', 'dynamodb:DeleteItem'],
        resources: [this.table.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [IDEMPOTENCY_PK] } },
      }),
    );
    return fn;
  }

  /** The VPC created when none is passed: two AZs, one NAT gateway. */
  private createVpc(): ec2.Vpc {
    const vpc = new ec2.Vpc(this, 'Vpc', { maxAzs: 2, natGateways: 1 });
    Validations.of(vpc).acknowledge({
      id: 'AwsSolutions-VPC7',
      reason: 'A convenience VPC for the engine tasks alone, which only call out (Kafka, DynamoDB, Lambda); flow logs cost per GB and are the network owner\'s choice: pass a vpc with flow logs to have them',
    });
    return vpc;
  }

  /** Grants `actions` on the views table and on each of its indexes, by name. */
  private grantTable(grantee: iam.IGrantable, actions: readonly string[]): void {
    const resourceArns = [this.table.tableArn, ...Object.values(TABLE_INDEXES).map((index) => `${this.table.tableArn}/index/${index.indexName}`)];
    iam.Grant.addToPrincipal({ grantee, actions: [...actions], resourceArns });
  }

  private grantMsk(config: ResolvedProps, role: iam.IRole): void {
    const clusterArn = config.kafka.mskClusterArn!;
    // MSK IAM resources hang off the cluster ARN: topic/<cluster>/<uuid>/<topic>, group/<cluster>/<uuid>/<group>.
    const sibling = (kind: 'topic' | 'group', name: string): string => {
      if (!Token.isUnresolved(clusterArn)) return `${clusterArn.replace(':cluster/', `:${kind}/`)}/${name}`;
      const parts = Fn.split(':cluster/', clusterArn, 2);
      return Fn.join('', [Fn.select(0, parts), `:${kind}/`, Fn.select(1, parts), `/${name}`]);
    };
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'KafkaConnect',
      actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeCluster'],
      resources: [clusterArn],
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'KafkaReadSources',
      actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
      resources: config.app.sourceTopics.map((topic) => sibling('topic', topic)),
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'KafkaWriteDeadLetters',
      actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
      resources: [sibling('topic', config.deadLetterTopic)],
    }));
    if (config.app.internalTopics.length > 0) {
      // Repartitioned views: the engine creates their topics (as many partitions as the source),
      // produces to them idempotently and folds them.
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'KafkaRepartitionTopics',
        actions: ['kafka-cluster:CreateTopic', 'kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData', 'kafka-cluster:WriteData'],
        resources: config.app.internalTopics.map((topic) => sibling('topic', topic)),
      }));
      role.addToPrincipalPolicy(new iam.PolicyStatement({
        sid: 'KafkaIdempotentWrites',
        actions: ['kafka-cluster:WriteDataIdempotently'],
        resources: [clusterArn],
      }));
    }
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'KafkaConsumerGroup',
      actions: ['kafka-cluster:AlterGroup', 'kafka-cluster:DescribeGroup'],
      resources: [sibling('group', config.consumerGroup)],
    }));
    // Builds of the code's view versions (a view added or bumped) run under groups of their
    // own, which the engine deletes once a build has swapped.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'KafkaBuildGroups',
      actions: ['kafka-cluster:AlterGroup', 'kafka-cluster:DescribeGroup', 'kafka-cluster:DeleteGroup'],
      resources: buildGroupIds(config.consumerGroup, config.app).map((group) => sibling('group', group)),
    }));
  }

  private createAlarms(config: ResolvedProps, cluster: ecs.Cluster, lag: cloudwatch.Metric): cloudwatch.Alarm[] {
    const app = config.app.name;
    const alarms: cloudwatch.Alarm[] = [];
    alarms.push(new cloudwatch.Alarm(this, 'ConsumerLagAlarm', {
      alarmDescription: `Tributary app ${app}: consumer lag above ${config.lagAlarmThreshold} records for 5 minutes; autoscaling is at its limit or the engine is stuck`,
      metric: lag.with({ statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: config.lagAlarmThreshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 5,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));
    alarms.push(new cloudwatch.Alarm(this, 'DeadLettersAlarm', {
      alarmDescription: `Tributary app ${app}: records or changes went to dead-letter topic ${config.deadLetterTopic}`,
      metric: new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: METRIC.deadLetters,
        dimensionsMap: { App: app },
        statistic: cloudwatch.Stats.SUM,
        period: Duration.minutes(5),
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));
    // Engine restarts: ECS replaces a task that exits or fails its health check, so for a minute or
    // more RunningTaskCount (its minimum in the minute) sits below DesiredTaskCount. Three such minutes
    // out of five is a crash loop, not a single restart or a scale-out still starting tasks.
    const serviceDims = { ClusterName: cluster.clusterName, ServiceName: this.service.serviceName };
    const taskMetric = (metricName: string, statistic: string): cloudwatch.Metric => new cloudwatch.Metric({
      namespace: 'ECS/ContainerInsights',
      metricName,
      dimensionsMap: serviceDims,
      statistic,
      period: Duration.minutes(1),
    });
    alarms.push(new cloudwatch.Alarm(this, 'EngineTasksMissingAlarm', {
      alarmDescription: `Tributary app ${app}: engine tasks keep stopping (running below desired); check the engine logs for crashes or failed health checks`,
      metric: new cloudwatch.MathExpression({
        expression: 'desired - running',
        usingMetrics: {
          desired: taskMetric('DesiredTaskCount', cloudwatch.Stats.MAXIMUM),
          running: taskMetric('RunningTaskCount', cloudwatch.Stats.MINIMUM),
        },
        period: Duration.minutes(1),
        label: 'Engine tasks missing',
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      // Container Insights reports a dead service as running 0, so a gap means no data, not an outage.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    }));
    for (const [name, fn] of Object.entries(this.functions)) {
      alarms.push(new cloudwatch.Alarm(this, `${name}ErrorsAlarm`, {
        alarmDescription: `Tributary app ${app}: function ${name} returned errors; the engine retries, then dead-letters the change`,
        metric: fn.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }));
    }
    if (config.alarmTopic) {
      const action = new cloudwatchActions.SnsAction(config.alarmTopic);
      for (const alarm of alarms) {
        alarm.addAlarmAction(action);
        alarm.addOkAction(action);
      }
    }
    return alarms;
  }
}
