import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { projectRoot } from '../../src/common/project-root';

/** The parts of a V8 `.cpuprofile` (node --cpu-prof) that a summary needs. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileShare {
  name: string;
  /** Share of the busy samples (idle excluded), in percent. */
  percent: number;
}

export interface ProfileSummary {
  file: string;
  busyMs: number;
  /** Self time by where the code lives: a package, a file of ours, Node's internals, the garbage collector. */
  byPlace: ProfileShare[];
  /** Self time by function. */
  byFunction: ProfileShare[];
}

/**
 * Where the code of a frame lives, in the terms a change is made in: the
 * package under node_modules, our own file (dist/ mapped back to its
 * source), `node:` for Node's own JavaScript, or V8's pseudo-frames.
 */
function placeOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('node_modules/');
  if (inModules !== -1) {
    const rest = path.slice(inModules + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (path.startsWith('node:')) return 'node:internals';
  return relative(projectRoot(), path).replace(/^dist\//, '').replace(/\.js$/, '.ts');
}

function top(totals: Map<string, number>, busy: number, count: number): ProfileShare[] {
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, time]) => ({ name, percent: Math.round((1000 * time) / busy) / 10 }));
}

/** Self time of a CPU profile, by place and by function, idle time left out. */
export function summariseCpuProfile(file: string, count = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, index) => {
    const frame = nodes.get(id);
    const time = profile.timeDeltas[index] ?? 0;
    if (!frame || frame.functionName === '(idle)') return;
    busy += time;
    const place = placeOf(frame.url, frame.functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + time);
    const name = `${frame.functionName || '(anonymous)'} ${place}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + time);
  });
  return { file, busyMs: Math.round(busy / 1000), byPlace: top(byPlace, busy, count), byFunction: top(byFunction, busy, count) };
}
