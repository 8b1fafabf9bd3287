/**
 * The resident memory of a process and all its descendants (Linux, from
 * /proc): a server in fork or cluster mode is a tree of processes, and its
 * memory is the sum of theirs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { readRss } from '../support/process-rss.js';

function parentOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself hold spaces.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null; // gone meanwhile
  }
}

/** `pid` and every live descendant of it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const child = Number(name);
    const parent = parentOf(child);
    if (parent === null) continue;
    const siblings = children.get(parent);
    if (siblings) siblings.push(child);
    else children.set(parent, [child]);
  }
  const tree: number[] = [];
  const toVisit = [pid];
  while (toVisit.length > 0) {
    const next = toVisit.pop()!;
    tree.push(next);
    toVisit.push(...(children.get(next) ?? []));
  }
  return tree;
}

/** VmRSS of the whole tree, in bytes (a process that exits meanwhile counts 0). */
export function treeRss(pid: number): number {
  let total = 0;
  for (const member of processTree(pid)) {
    try {
      total += readRss(member);
    } catch {
      // Exited between the listing and the reading, or a zombie without VmRSS.
    }
  }
  return total;
}
