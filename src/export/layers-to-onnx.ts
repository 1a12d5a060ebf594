/**
 * Converts a tfjs Layers model (a chain of layers: `tf.sequential`, or a functional model whose
 * layers each read the one before) to an ONNX graph computing the same outputs at inference
 * (dropout off, batch normalization with its moving statistics).
 *
 * Layout: tfjs image tensors are NHWC, ONNX's Conv/Pool/BatchNormalization are NCHW. The graph
 * keeps the model's own input (same shape and values as our `predict`) and transposes to NCHW
 * before the first convolution-like layer; a layer whose meaning depends on the axis order
 * (Flatten, Reshape, Dense on an image, softmax) transposes back to NHWC first, so the Dense
 * weights after a Flatten line up with tfjs's NHWC flattening order.
 */
import type * as tf from '@tensorflow/tfjs';
import { ArtifactError } from '../util/errors.ts';
import type { AttrValue, OnnxInitializer, OnnxNode } from './onnx-proto.ts';

/** Layer classes the exporter maps, for error messages and docs. */
export const SUPPORTED_LAYERS = [
  'InputLayer',
  'Dense',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Softmax',
  'Dropout',
  'SpatialDropout1D',
  'GaussianNoise',
  'GaussianDropout',
  'AlphaDropout',
  'Conv2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'BatchNormalization',
  'Flatten',
  'Reshape',
] as const;

/** Activation names (tfjs `activation` config values) the exporter maps. */
export const SUPPORTED_ACTIVATIONS = ['linear', 'relu', 'relu6', 'elu', 'selu', 'tanh', 'sigmoid', 'hardSigmoid', 'softplus', 'softsign', 'softmax', 'swish', 'mish'] as const;

/** The converted graph: nodes, constants, and the names and shapes of its input and output. */
export interface ConvertedGraph {
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  input: { name: string; shape: (number | string)[] };
  output: { name: string; shape: (number | string)[] };
}

/** The tensor flowing between layers: its ONNX name, tfjs shape (no batch) and ONNX axis order. */
interface Flow {
  name: string;
  /** Shape without the batch axis, in tfjs (channels-last) order. */
  shape: number[];
  /** `nchw`: the ONNX tensor of a rank-3 (H, W, C) value is [N, C, H, W]; else as tfjs. */
  nchw: boolean;
}

/** Options of {@link layersToOnnx}. */
export interface ConvertOptions {
  inputName?: string;
  outputName?: string;
  /** Name of the batch dimension in the graph's input and output shapes. */
  batchDim?: string;
}

type Config = Record<string, unknown>;

/** A model whose structure or layers the exporter does not support. */
function unsupported(layer: tf.layers.Layer, why: string): ArtifactError {
  return new ArtifactError(`ONNX export: layer '${layer.name}' (class ${layer.getClassName()}) ${why}`);
}

/** The layers of `model` in order, checked to form a single chain from its one input. */
function chain(model: tf.LayersModel): tf.layers.Layer[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new ArtifactError(`ONNX export: the model has ${model.inputs.length} inputs and ${model.outputs.length} outputs; only single-input, single-output models are supported`);
  }
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  let prev: string | undefined = model.layers.find((l) => l.getClassName() === 'InputLayer')?.name;
  for (const l of layers) {
    if (l.inboundNodes.length !== 1) throw unsupported(l, `is used ${l.inboundNodes.length} times; only a chain of layers, each used once, can be exported`);
    const inbound = l.inboundNodes[0]!.inboundLayers.map((x) => x.name);
    if (inbound.length !== 1 || (prev !== undefined && inbound[0] !== prev)) {
      throw unsupported(l, `reads [${inbound.join(', ')}]; only a chain of layers, each reading the one before, can be exported`);
    }
    prev = l.name;
  }
  return layers;
}

/** The float32 weights of a layer by their short name (`kernel`, `bias`, `gamma`, ...). */
function weightsOf(layer: tf.layers.Layer): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  const values = layer.getWeights();
  layer.weights.forEach((w, i) => {
    const full = (w as { originalName?: string }).originalName ?? w.name;
    const short = full.split('/').pop()!.replace(/_\d+$/, '');
    const t = values[i]!;
    if (t.dtype !== 'float32') throw unsupported(layer, `has a ${t.dtype} weight '${full}'; only float32 weights are supported`);
    out.set(short, { shape: t.shape.slice(), data: t.dataSync() as Float32Array });
  });
  return out;
}

function pair(v: unknown, what: string, layer: tf.layers.Layer): [number, number] {
  const a = typeof v === 'number' ? [v, v] : Array.isArray(v) ? v : undefined;
  if (!a || a.length !== 2 || !a.every((x) => Number.isInteger(x) && x > 0)) throw unsupported(layer, `has ${what} ${JSON.stringify(v)}; expected one or two positive integers`);
  return [a[0] as number, a[1] as number];
}

/** TensorFlow's SAME padding along one axis: [before, after], the odd pixel after. */
function samePads(size: number, k: number, stride: number, dilation: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/**
 * The ONNX graph of `model` (see the module comment for the layout rules).
 * @throws ArtifactError naming the layer and its class when a layer, an activation or a layer
 * option is not supported, or when the model is not a single chain of layers.
 */
export function layersToOnnx(model: tf.LayersModel, opts: ConvertOptions = {}): ConvertedGraph {
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'output';
  const batch = opts.batchDim ?? 'batch';
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const used = new Set<string>([inputName]);
  const fresh = (base: string): string => {
    const clean = base.replace(/[^A-Za-z0-9_./:-]/g, '_');
    let n = clean;
    for (let k = 1; used.has(n); k++) n = `${clean}_${k}`;
    used.add(n);
    return n;
  };
  const emit = (op: string, inputs: string[], base: string, attrs?: Record<string, AttrValue>): string => {
    const out = fresh(base);
    nodes.push({ op, inputs, outputs: [out], name: fresh(`${base}/${op}`), ...(attrs ? { attrs } : {}) });
    return out;
  };
  const constant = (base: string, dims: number[], data: Float32Array | BigInt64Array): string => {
    const name = fresh(base);
    initializers.push({ name, dims, data });
    return name;
  };

  const inShape = model.inputs[0]!.shape.slice(1);
  if (inShape.some((d) => d === null || d === undefined)) throw new ArtifactError(`ONNX export: the model's input shape [${model.inputs[0]!.shape.map(String).join(', ')}] has unknown dimensions besides the batch; only fixed-size inputs are supported`);
  let x: Flow = { name: inputName, shape: inShape as number[], nchw: false };

  const toNchw = (layer: tf.layers.Layer): void => {
    if (x.shape.length !== 3) throw unsupported(layer, `needs an image input (height, width, channels); it gets shape [${x.shape.join(', ')}] (add a Reshape layer before it)`);
    if (!x.nchw) x = { ...x, name: emit('Transpose', [x.name], `${layer.name}/to_nchw`, { perm: { ints: [0, 3, 1, 2] } }), nchw: true };
  };
  const toTfLayout = (base: string): void => {
    if (x.nchw) x = { ...x, name: emit('Transpose', [x.name], `${base}/to_nhwc`, { perm: { ints: [0, 2, 3, 1] } }), nchw: false };
  };

  /** Applies a tfjs activation by name to `x`. */
  const activate = (layer: tf.layers.Layer, act: unknown, base: string): void => {
    const a = act === undefined || act === null ? 'linear' : String(act);
    const one = (op: string, attrs?: Record<string, AttrValue>): void => void (x = { ...x, name: emit(op, [x.name], base, attrs) });
    switch (a) {
      case 'linear':
        return;
      case 'relu':
        return one('Relu');
      case 'relu6': {
        const lo = constant(`${base}/min`, [], new Float32Array([0]));
        const hi = constant(`${base}/max`, [], new Float32Array([6]));
        x = { ...x, name: emit('Clip', [x.name, lo, hi], base) };
        return;
      }
      case 'elu':
        return one('Elu', { alpha: { float: 1 } });
      case 'selu':
        return one('Selu');
      case 'tanh':
        return one('Tanh');
      case 'sigmoid':
        return one('Sigmoid');
      case 'hardSigmoid':
        return one('HardSigmoid', { alpha: { float: 0.2 }, beta: { float: 0.5 } });
      case 'softplus':
        return one('Softplus');
      case 'softsign':
        return one('Softsign');
      case 'softmax':
        toTfLayout(base);
        return one('Softmax', { axis: { int: -1 } });
      case 'swish': {
        const s = emit('Sigmoid', [x.name], `${base}/sigmoid`);
        x = { ...x, name: emit('Mul', [x.name, s], base) };
        return;
      }
      case 'mish': {
        const t = emit('Tanh', [emit('Softplus', [x.name], `${base}/softplus`)], `${base}/tanh`);
        x = { ...x, name: emit('Mul', [x.name, t], base) };
        return;
      }
      default:
        throw unsupported(layer, `has activation '${a}'; supported: ${SUPPORTED_ACTIVATIONS.join(', ')}`);
    }
  };

  for (const layer of chain(model)) {
    const cls = layer.getClassName();
    const cfg = layer.getConfig() as Config;
    const name = layer.name;
    switch (cls) {
      case 'Dropout':
      case 'SpatialDropout1D':
      case 'GaussianNoise':
      case 'GaussianDropout':
      case 'AlphaDropout':
        break; // identity at inference
      case 'Activation':
        activate(layer, cfg.activation, name);
        break;
      case 'ReLU': {
        if (typeof cfg.maxValue === 'number') {
          const lo = constant(`${name}/min`, [], new Float32Array([0]));
          const hi = constant(`${name}/max`, [], new Float32Array([cfg.maxValue]));
          x = { ...x, name: emit('Clip', [x.name, lo, hi], name) };
        } else activate(layer, 'relu', name);
        break;
      }
      case 'LeakyReLU':
        x = { ...x, name: emit('LeakyRelu', [x.name], name, { alpha: { float: typeof cfg.alpha === 'number' ? cfg.alpha : 0.3 } }) };
        break;
      case 'ELU':
        x = { ...x, name: emit('Elu', [x.name], name, { alpha: { float: typeof cfg.alpha === 'number' ? cfg.alpha : 1 } }) };
        break;
      case 'Softmax': {
        const axis = cfg.axis ?? -1;
        if (axis !== -1 && axis !== x.shape.length) throw unsupported(layer, `has axis ${JSON.stringify(axis)}; only the last axis is supported`);
        activate(layer, 'softmax', name);
        break;
      }
      case 'Dense': {
        const w = weightsOf(layer);
        const kernel = w.get('kernel');
        if (!kernel) throw unsupported(layer, 'has no kernel weight');
        const units = kernel.shape[1]!;
        const k = constant(`${name}/kernel`, kernel.shape, kernel.data);
        const bias = w.get('bias');
        const b = bias ? constant(`${name}/bias`, bias.shape, bias.data) : undefined;
        const act = cfg.activation;
        if (x.shape.length === 1) {
          x = { shape: [units], nchw: false, name: emit('Gemm', b ? [x.name, k, b] : [x.name, k], act && act !== 'linear' ? `${name}/linear` : name) };
        } else {
          toTfLayout(name);
          let y = emit('MatMul', [x.name, k], `${name}/matmul`);
          if (b) y = emit('Add', [y, b], act && act !== 'linear' ? `${name}/linear` : name);
          x = { shape: [...x.shape.slice(0, -1), units], nchw: false, name: y };
        }
        activate(layer, act, name);
        break;
      }
      case 'Conv2D': {
        if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw unsupported(layer, `has dataFormat '${String(cfg.dataFormat)}'; only channelsLast is supported`);
        if (cfg.padding !== 'same' && cfg.padding !== 'valid') throw unsupported(layer, `has padding '${String(cfg.padding)}'; supported: same, valid`);
        toNchw(layer);
        const [kh, kw] = pair(cfg.kernelSize, 'kernelSize', layer);
        const [sh, sw] = pair(cfg.strides ?? 1, 'strides', layer);
        const [dh, dw] = pair(cfg.dilationRate ?? 1, 'dilationRate', layer);
        const w = weightsOf(layer);
        const kernel = w.get('kernel');
        if (!kernel || kernel.shape.length !== 4) throw unsupported(layer, 'has no 4-d kernel weight');
        const [, , cin, cout] = kernel.shape as [number, number, number, number];
        // tfjs kernel [kh, kw, in, out] -> ONNX [out, in, kh, kw].
        const oihw = new Float32Array(kernel.data.length);
        for (let i = 0; i < kh; i++)
          for (let j = 0; j < kw; j++)
            for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) oihw[((o * cin + c) * kh + i) * kw + j] = kernel.data[((i * kw + j) * cin + c) * cout + o]!;
        const inputs = [x.name, constant(`${name}/kernel`, [cout, cin, kh, kw], oihw)];
        const bias = w.get('bias');
        if (bias) inputs.push(constant(`${name}/bias`, bias.shape, bias.data));
        const [H, W] = x.shape as [number, number, number];
        const [pt, pb] = cfg.padding === 'same' ? samePads(H, kh, sh, dh) : [0, 0];
        const [pl, pr] = cfg.padding === 'same' ? samePads(W, kw, sw, dw) : [0, 0];
        const outH = cfg.padding === 'same' ? Math.ceil(H / sh) : Math.ceil((H - (kh - 1) * dh) / sh);
        const outW = cfg.padding === 'same' ? Math.ceil(W / sw) : Math.ceil((W - (kw - 1) * dw) / sw);
        if (outH < 1 || outW < 1) throw unsupported(layer, `gives an empty output from a ${H}x${W} input`);
        const act = cfg.activation;
        x = {
          shape: [outH, outW, cout],
          nchw: true,
          name: emit('Conv', inputs, act && act !== 'linear' ? `${name}/linear` : name, {
            kernel_shape: { ints: [kh, kw] },
            strides: { ints: [sh, sw] },
            dilations: { ints: [dh, dw] },
            pads: { ints: [pt, pl, pb, pr] },
            group: { int: 1 },
          }),
        };
        activate(layer, act, name);
        break;
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw unsupported(layer, `has dataFormat '${String(cfg.dataFormat)}'; only channelsLast is supported`);
        if (cfg.padding !== 'same' && cfg.padding !== 'valid') throw unsupported(layer, `has padding '${String(cfg.padding)}'; supported: same, valid`);
        toNchw(layer);
        const [kh, kw] = pair(cfg.poolSize, 'poolSize', layer);
        const [sh, sw] = pair(cfg.strides ?? cfg.poolSize, 'strides', layer);
        const [H, W, C] = x.shape as [number, number, number];
        const [pt, pb] = cfg.padding === 'same' ? samePads(H, kh, sh, 1) : [0, 0];
        const [pl, pr] = cfg.padding === 'same' ? samePads(W, kw, sw, 1) : [0, 0];
        const outH = cfg.padding === 'same' ? Math.ceil(H / sh) : Math.ceil((H - kh + 1) / sh);
        const outW = cfg.padding === 'same' ? Math.ceil(W / sw) : Math.ceil((W - kw + 1) / sw);
        if (outH < 1 || outW < 1) throw unsupported(layer, `gives an empty output from a ${H}x${W} input`);
        const attrs: Record<string, AttrValue> = { kernel_shape: { ints: [kh, kw] }, strides: { ints: [sh, sw] }, pads: { ints: [pt, pl, pb, pr] } };
        // TensorFlow's SAME average pooling divides by the pixels inside the image only.
        if (cls === 'AveragePooling2D') attrs.count_include_pad = { int: 0 };
        x = { shape: [outH, outW, C], nchw: true, name: emit(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [x.name], name, attrs) };
        break;
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        if (cfg.dataFormat !== undefined && cfg.dataFormat !== 'channelsLast') throw unsupported(layer, `has dataFormat '${String(cfg.dataFormat)}'; only channelsLast is supported`);
        if (cfg.keepDims === true) throw unsupported(layer, 'has keepDims: true; not supported');
        toNchw(layer);
        const pooled = emit(cls === 'GlobalAveragePooling2D' ? 'GlobalAveragePool' : 'GlobalMaxPool', [x.name], `${name}/pool`);
        x = { shape: [x.shape[2]!], nchw: false, name: emit('Flatten', [pooled], name, { axis: { int: 1 } }) };
        break;
      }
      case 'BatchNormalization': {
        const rank = x.shape.length + 1;
        const axis = typeof cfg.axis === 'number' ? (cfg.axis < 0 ? rank + cfg.axis : cfg.axis) : NaN;
        if (axis !== rank - 1 || (rank !== 2 && rank !== 4)) {
          throw unsupported(layer, `normalizes axis ${JSON.stringify(cfg.axis)} of a rank-${rank} input; supported: the channel (last) axis of a flat or image input`);
        }
        if (rank === 4) toNchw(layer);
        const w = weightsOf(layer);
        const C = x.shape[x.shape.length - 1]!;
        const get = (k: string, fill: number): string => {
          const v = w.get(k);
          return constant(`${name}/${k}`, [C], v ? v.data : new Float32Array(C).fill(fill));
        };
        if (!w.has('moving_mean') || !w.has('moving_variance')) throw unsupported(layer, 'has no moving_mean / moving_variance weights');
        const inputs = [x.name, get('gamma', 1), get('beta', 0), get('moving_mean', 0), get('moving_variance', 1)];
        x = { ...x, name: emit('BatchNormalization', inputs, name, { epsilon: { float: typeof cfg.epsilon === 'number' ? cfg.epsilon : 1e-3 } }) };
        break;
      }
      case 'Flatten': {
        toTfLayout(name);
        x = { shape: [x.shape.reduce((a, b) => a * b, 1)], nchw: false, name: emit('Flatten', [x.name], name, { axis: { int: 1 } }) };
        break;
      }
      case 'Reshape': {
        const target = cfg.targetShape;
        if (!Array.isArray(target) || !target.every((d) => Number.isInteger(d) && (d > 0 || d === -1))) throw unsupported(layer, `has targetShape ${JSON.stringify(target)}`);
        toTfLayout(name);
        const size = x.shape.reduce((a, b) => a * b, 1);
        const known = (target as number[]).reduce((a, d) => (d === -1 ? a : a * d), 1);
        const shape = (target as number[]).map((d) => (d === -1 ? size / known : d));
        if (shape.reduce((a, b) => a * b, 1) !== size || !shape.every(Number.isInteger)) throw unsupported(layer, `cannot reshape [${x.shape.join(', ')}] to [${target.join(', ')}]`);
        const s = constant(`${name}/shape`, [shape.length + 1], BigInt64Array.from([0n, ...shape.map(BigInt)]));
        x = { shape, nchw: false, name: emit('Reshape', [x.name, s], name) };
        break;
      }
      default:
        throw unsupported(layer, `is not supported by the ONNX export; supported layers: ${SUPPORTED_LAYERS.join(', ')}`);
    }
  }
  toTfLayout('output');
  const declared = model.outputs[0]!.shape.slice(1);
  if (declared.length !== x.shape.length || declared.some((d, i) => d !== null && d !== x.shape[i])) {
    throw new Error(`ONNX export: computed output shape [${x.shape.join(', ')}] differs from the model's [${declared.join(', ')}] (a bug in the exporter)`);
  }
  // The graph output gets the requested name: rename the last node's output, or copy the input.
  const last = nodes.at(-1);
  if (last && last.outputs[0] === x.name) last.outputs = [outputName];
  else nodes.push({ op: 'Identity', inputs: [x.name], outputs: [outputName], name: 'output/Identity' });
  return {
    nodes,
    initializers,
    input: { name: inputName, shape: [batch, ...(inShape as number[])] },
    output: { name: outputName, shape: [batch, ...x.shape] },
  };
}
