/**
 * The GPU a page's tfjs backend runs on (SwiftShader here), or the CPU
 * backends' name: shared by the browser suite (page.ts) and the browser
 * benchmark (bench/browser/page.ts).
 */
import * as tf from '@tensorflow/tfjs';

/** The GPU the backend runs on (SwiftShader here), or the CPU backends' name. */
export async function deviceName(backend: string): Promise<string> {
  try {
    const b = tf.backend() as unknown as {
      gpgpu?: {gl: WebGL2RenderingContext};
      adapterInfo?: {vendor?: string; architecture?: string; description?: string};
    };
    if (backend === 'webgl' && b.gpgpu) {
      const gl = b.gpgpu.gl;
      const ext = gl.getExtension('WEBGL_debug_renderer_info');
      return String(gl.getParameter(ext ? ext.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
    }
    if (backend === 'webgpu' && b.adapterInfo) {
      const i = b.adapterInfo;
      return [i.vendor, i.architecture, i.description].filter(Boolean).join(' ') || 'unknown adapter';
    }
  } catch (e) {
    return `unknown (${(e as Error).message})`;
  }
  return backend === 'wasm' ? 'WebAssembly' : 'JavaScript';
}

