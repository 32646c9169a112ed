/**
 * The error every bad argument or input raises. Messages follow Keras' style:
 * who complains, what is wrong and what was expected, then `Received: name=value`.
 * The checks that build them live in validate.ts.
 *
 * ```js
 * try { tfn.layers.groupNorm({numGroups: 0}); } catch (e) { if (e instanceof tfn.ValueError) console.log(e.message); }
 * ```
 */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
    Object.setPrototypeOf(this, ValueError.prototype);
  }
}
