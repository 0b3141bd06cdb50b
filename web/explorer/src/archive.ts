// Events older than the ones a canister keeps: each log's oldest blocks
// move to an archive canister (src/archive), and `icrc3_get_blocks` names
// them with `archived_blocks` callbacks. This module reads a range of a
// log as ICRC-3 blocks, follows the callbacks, and maps each block's event
// back from its ICRC-3 value to the event's Candid value by the event's
// type: the inverse of `to_value` in src/api/src/blocks.rs, so an archived
// event shows as the same object `get_events` would have returned.

import { Actor, type Agent } from "@icp-sdk/core/agent";
import { IDL } from "@icp-sdk/core/candid";
import { Principal } from "@icp-sdk/core/principal";
import {
  GetBlocksRequest,
  GetBlocksResult,
  type GetBlocksResult as BlocksAnswer,
  type ICRC3Value,
} from "@icp-compute-market/bindings/matcher/matcher.did";

/** An event as `get_events` pages have it. */
export interface LogEvent {
  seq: bigint;
  time_ns: bigint;
  event: object;
}

/** The part of a log a page asks for, as the canister answered it. */
export interface LogRange {
  /** The events archived away from the canister, oldest first. */
  archived: LogEvent[];
  /** The archives they came from. */
  archives: Principal[];
  /** Events in the log, archived ones included. */
  length: bigint;
}

export type Icrc3Blocks = (requests: { start: bigint; length: bigint }[]) => Promise<BlocksAnswer>;

/** Where an ICRC-3 value is not what the event's type makes of it. */
class ShapeError extends Error {}

function bad(what: string, v: ICRC3Value | undefined): never {
  throw new ShapeError(`expected ${what}, found ${v === undefined ? "nothing" : Object.keys(v)[0]}`);
}

/** The number of a `Nat` or `Int` value. */
function integer(v: ICRC3Value | undefined): bigint {
  if (v && "Nat" in v) return v.Nat;
  if (v && "Int" in v) return v.Int;
  return bad("a number", v);
}

function blob(v: ICRC3Value | undefined): Uint8Array {
  if (v && "Blob" in v) return Uint8Array.from(v.Blob);
  // An empty `vec nat8` is an empty Array.
  if (v && "Array" in v && v.Array.length === 0) return new Uint8Array();
  return bad("a Blob", v);
}

function array(v: ICRC3Value | undefined): ICRC3Value[] {
  if (v && "Array" in v) return v.Array;
  return bad("an Array", v);
}

function map(v: ICRC3Value | undefined): Map<string, ICRC3Value> {
  if (v && "Map" in v) return new Map(v.Map);
  return bad("a Map", v);
}

/** Maps an ICRC-3 value to the Candid value of the visited type. */
class FromValue extends IDL.Visitor<ICRC3Value | undefined, unknown> {
  visitBool(_t: IDL.BoolClass, v: ICRC3Value | undefined): unknown {
    return integer(v) !== 0n;
  }
  visitNull(): unknown {
    return null;
  }
  visitReserved(): unknown {
    return null;
  }
  visitText(_t: IDL.TextClass, v: ICRC3Value | undefined): unknown {
    if (v && "Text" in v) return v.Text;
    return bad("a Text", v);
  }
  visitNat(_t: IDL.NatClass, v: ICRC3Value | undefined): unknown {
    return integer(v);
  }
  visitInt(_t: IDL.IntClass, v: ICRC3Value | undefined): unknown {
    return integer(v);
  }
  visitFixedNat(t: IDL.FixedNatClass, v: ICRC3Value | undefined): unknown {
    const n = integer(v);
    return t._bits <= 32 ? Number(n) : n;
  }
  visitFixedInt(t: IDL.FixedIntClass, v: ICRC3Value | undefined): unknown {
    const n = integer(v);
    return t._bits <= 32 ? Number(n) : n;
  }
  visitPrincipal(_t: IDL.PrincipalClass, v: ICRC3Value | undefined): unknown {
    return Principal.fromUint8Array(blob(v));
  }
  visitVec<T>(_t: IDL.VecClass<T>, ty: IDL.Type<T>, v: ICRC3Value | undefined): unknown {
    if (ty instanceof IDL.FixedNatClass && ty._bits === 8) return blob(v);
    return array(v).map((x) => ty.accept(this, x));
  }
  visitOpt<T>(_t: IDL.OptClass<T>, ty: IDL.Type<T>, v: ICRC3Value | undefined): unknown {
    const items = array(v);
    return items.length ? [ty.accept(this, items[0])] : [];
  }
  visitRecord(_t: IDL.RecordClass, fields: Array<[string, IDL.Type]>, v: ICRC3Value | undefined): unknown {
    const entries = map(v);
    const out: Record<string, unknown> = {};
    for (const [name, ty] of fields) {
      const entry = entries.get(name);
      // An `opt` field is its value, or missing for `null`.
      if (ty instanceof IDL.OptClass) out[name] = entry === undefined ? [] : [ty._type.accept(this, entry)];
      else out[name] = ty.accept(this, entry);
    }
    return out;
  }
  visitTuple<T extends unknown[]>(_t: IDL.TupleClass<T>, components: IDL.Type[], v: ICRC3Value | undefined): unknown {
    const items = array(v);
    return components.map((ty, i) => ty.accept(this, items[i]));
  }
  visitVariant(_t: IDL.VariantClass, fields: Array<[string, IDL.Type]>, v: ICRC3Value | undefined): unknown {
    const entries = [...map(v)];
    const field = entries.length === 1 ? fields.find(([name]) => name === entries[0][0]) : undefined;
    if (!field) return bad("a Map of one known tag", v);
    return { [field[0]]: field[1].accept(this, entries[0][1]) };
  }
  visitRec<T>(_t: IDL.RecClass<T>, ty: IDL.ConstructType<T>, v: ICRC3Value | undefined): unknown {
    return ty.accept(this, v);
  }
  visitFunc(_t: IDL.FuncClass, v: ICRC3Value | undefined): unknown {
    const [canister, method] = array(v);
    return [Principal.fromUint8Array(blob(canister)), method && "Text" in method ? method.Text : bad("a Text", method)];
  }
  visitType<T>(t: IDL.Type<T>): unknown {
    throw new ShapeError(`no ICRC-3 mapping for ${t.display()}`);
  }
}

/** The event a block holds (`{ phash, ts, btype, ev }`), as `type` reads it. */
export function eventOf(id: bigint, block: ICRC3Value, type: IDL.Type): LogEvent {
  const fields = map(block);
  return {
    seq: id,
    time_ns: integer(fields.get("ts")),
    event: type.accept(new FromValue(), fields.get("ev")) as object,
  };
}

/** A query that answers with `GetBlocksResult`, at a canister and method
 * an `archived_blocks` callback names. */
function callback(agent: Agent, canisterId: Principal, method: string): Icrc3Blocks {
  const service: IDL.InterfaceFactory = () =>
    IDL.Service({ [method]: IDL.Func([IDL.Vec(GetBlocksRequest)], [GetBlocksResult], ["query"]) });
  const actor = Actor.createActor<Record<string, Icrc3Blocks>>(service, { agent, canisterId });
  return actor[method];
}

/** Blocks of a log as its canister and archives served them. */
export interface LogBlocks {
  /** The blocks, in order of index. */
  blocks: { id: bigint; block: ICRC3Value }[];
  /** How many of them came from archives (the first ones). */
  archived: number;
  /** The archives they came from. */
  archives: Principal[];
  /** Blocks in the log, archived ones included. */
  length: bigint;
}

/**
 * Blocks `start` to `start + length` of a log (at most 100): asks its
 * canister with `icrc3_get_blocks`, then each archive its answer names.
 */
export async function readBlocks(agent: Agent, blocks: Icrc3Blocks, start: bigint, length: bigint): Promise<LogBlocks> {
  const answer = await blocks([{ start, length }]);
  const old: { id: bigint; block: ICRC3Value }[] = [];
  const archives: Principal[] = [];
  for (const part of answer.archived_blocks) {
    const [canister, method] = part.callback;
    archives.push(canister);
    old.push(...(await callback(agent, canister, method)(part.args)).blocks);
  }
  const all = [...old, ...answer.blocks].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { blocks: all, archived: old.length, archives, length: answer.log_length };
}

/**
 * Events `start` to `start + length` of a log, as far as they are archived
 * ([`readBlocks`]'s archived part), decoded with `type`, the log's event
 * type.
 */
export async function archivedEvents(
  agent: Agent,
  blocks: Icrc3Blocks,
  type: IDL.Type,
  start: bigint,
  length: bigint,
): Promise<LogRange> {
  const read = await readBlocks(agent, blocks, start, length);
  const archived = read.blocks.slice(0, read.archived).map((b) => eventOf(b.id, b.block, type));
  return { archived, archives: read.archives, length: read.length };
}
