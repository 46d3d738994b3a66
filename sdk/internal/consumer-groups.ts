/**
 * Names of the Kafka consumer groups an engine task uses besides its own (`TRIBUTARY_GROUP_ID`):
 * one per view version being built, and for a repartitioned view a second one for the build's
 * fold leg. The engine names its groups with these, and the CDK app scopes the engine's MSK IAM
 * group permissions to exactly them. docs/architecture.md ("View lifecycle") describes the
 * builds.
 */
import type { App } from './define.ts';
import { viewSegment } from './storage.ts';

/**
 * Consumer group of a view version's build (`segment` from `viewSegment`); for a repartitioned
 * view, the group of its forward leg.
 *
 * @example
 * buildGroupId('gym', 'classAttendance@2'); // 'gym.build.classAttendance@2'
 */
export function buildGroupId(groupId: string, segment: string): string {
  return `${groupId}.build.${segment}`;
}

/**
 * Consumer group of a repartitioned view version's fold leg, which folds the version's own
 * repartition topic.
 *
 * @example
 * repartitionFoldGroupId('gym', 'byMember@2'); // 'gym.build.byMember@2.repartition'
 */
export function repartitionFoldGroupId(groupId: string, segment: string): string {
  return `${buildGroupId(groupId, segment)}.repartition`;
}

/**
 * Every consumer group a build of the app's view versions (those in its code) may use: a view
 * added to a running app or bumped is built under these. Sorted, without duplicates.
 *
 * @example
 * buildGroupIds('gym', app); // ['gym.build.classAttendance@2', 'gym.build.revenueByDay', ...]
 */
export function buildGroupIds(groupId: string, app: App): string[] {
  const groups = new Set<string>();
  for (const view of app.views) {
    const segment = viewSegment(view.name, view.version);
    groups.add(buildGroupId(groupId, segment));
    if (view.repartition === true) groups.add(repartitionFoldGroupId(groupId, segment));
  }
  return [...groups].sort();
}
