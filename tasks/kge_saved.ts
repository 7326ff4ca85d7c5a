/**
 * A knowledge-graph embedding model written by `lapse train --out DIR` (task kge, see
 * `tasks/kge_out.ts`), loaded for link prediction: the score of a triple, the best tails of
 * (head, relation) and the best heads of (relation, tail). Used by `lapse predict`.
 *
 * @example
 * ```ts ignore
 * const m = await KgeSavedModel.load("out/kge");
 * const h = m.entityKey("heart.n.01"), r = m.relationKey("_part_of");
 * console.log(m.top(h, r, 5, "tail").map(([e, s]) => `${m.entityNames[e]} ${s}`));
 * ```
 *
 * @module
 */
import { readNpy } from "../data/npy.ts";
import { topK } from "../core/stats.ts";
import { dot, type KgeAlgorithm, type KgeModel, makeModel } from "./kge_model.ts";

/** What `meta.json` of a kge model folder holds. */
export interface KgeMeta {
  algorithm: KgeAlgorithm;
  dim: number;
  entities: number;
  relations: number;
}

/** A loaded kge model: embeddings without accumulators, names, and the scoring model. */
export class KgeSavedModel {
  readonly #entityIndex: Map<string, number>;
  readonly #relationIndex: Map<string, number>;
  readonly #q: Float64Array;

  private constructor(
    readonly meta: KgeMeta,
    readonly model: KgeModel,
    readonly entities: Float32Array,
    readonly relations: Float32Array,
    readonly entityNames: string[],
    readonly relationNames: string[],
  ) {
    this.#entityIndex = new Map(entityNames.map((n, i) => [n, i]));
    this.#relationIndex = new Map(relationNames.map((n, i) => [n, i]));
    this.#q = new Float64Array(meta.dim);
  }

  /** True if `dir` holds a kge model (a `meta.json` naming an algorithm). */
  static async isKgeModel(dir: string): Promise<boolean> {
    try {
      const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`));
      return typeof meta?.algorithm === "string";
    } catch {
      return false;
    }
  }

  /** Loads `dir`; an inconsistent file is a `RangeError` naming it. */
  static async load(dir: string): Promise<KgeSavedModel> {
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`)) as KgeMeta;
    const model = makeModel(meta.algorithm, meta.dim);
    const ent = await readNpy(`${dir}/entities.npy`);
    const rel = await readNpy(`${dir}/relations.npy`);
    if (ent.shape[0] !== meta.entities || ent.data.length !== meta.entities * meta.dim) {
      throw new RangeError(
        `${dir}/entities.npy has shape [${ent.shape}], meta.json says ${meta.entities} x ${meta.dim}`,
      );
    }
    if (rel.shape[0] !== meta.relations || rel.data.length !== meta.relations * model.relFloats) {
      throw new RangeError(
        `${dir}/relations.npy has shape [${rel.shape}], meta.json says ${meta.relations} ` +
          `relations of ${model.relFloats} floats`,
      );
    }
    const names = async (file: string, n: number) => {
      const list = (await Deno.readTextFile(`${dir}/${file}`)).split("\n");
      if (list.at(-1) === "") list.pop();
      if (list.length !== n) {
        throw new RangeError(`${dir}/${file} has ${list.length} names, expected ${n}`);
      }
      return list;
    };
    return new KgeSavedModel(
      meta,
      model,
      ent.data,
      rel.data,
      await names("entity_names.txt", meta.entities),
      await names("relation_names.txt", meta.relations),
    );
  }

  /** The key of an entity name; a `RangeError` if it is unknown. */
  entityKey(name: string): number {
    const k = this.#entityIndex.get(name.trim());
    if (k === undefined) throw new RangeError(`unknown entity "${name.trim()}"`);
    return k;
  }

  /** The key of a relation name; a `RangeError` naming the known ones if it is unknown. */
  relationKey(name: string): number {
    const k = this.#relationIndex.get(name.trim());
    if (k === undefined) {
      const some = this.relationNames.slice(0, 20).join(", ");
      throw new RangeError(
        `unknown relation "${name.trim()}" (known: ${some}${
          this.relationNames.length > 20 ? ", ..." : ""
        })`,
      );
    }
    return k;
  }

  /** The score of the triple (h, r, t) (higher: more plausible). */
  score(h: number, r: number, t: number): number {
    const d = this.meta.dim;
    this.model.tailQuery(
      this.entities,
      h * d,
      this.relations,
      r * this.model.relFloats,
      this.#q,
      0,
    );
    return dot(this.#q, 0, this.entities, t * d, d);
  }

  /**
   * The `k` best entities for the missing side, best first: tails of (`e`, `r`) with side
   * `tail`, heads of (`r`, `e`) with side `head`.
   */
  top(e: number, r: number, k: number, side: "head" | "tail"): [number, number][] {
    const d = this.meta.dim, ro = r * this.model.relFloats, q = this.#q;
    if (side === "tail") this.model.tailQuery(this.entities, e * d, this.relations, ro, q, 0);
    else this.model.headQuery(this.relations, ro, this.entities, e * d, q, 0);
    return topK(this.meta.entities, k, (x) => dot(q, 0, this.entities, x * d, d));
  }
}
