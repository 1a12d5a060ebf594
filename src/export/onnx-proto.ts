/**
 * Builders for the ONNX protobuf messages an exported model needs (onnx/onnx.proto, IR version 7),
 * encoded by hand with {@link ProtoWriter}. Field numbers are those of onnx.proto:
 *
 * - ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6, graph 7,
 *   opset_import 8, metadata_props 14
 * - GraphProto: node 1, name 2, initializer 5, input 11, output 12
 * - NodeProto: input 1, output 2, name 3, op_type 4, attribute 5
 * - AttributeProto: name 1, f 2, i 3, floats 7, ints 8, type 20
 * - TensorProto: dims 1, data_type 2, name 8, raw_data 9
 * - ValueInfoProto: name 1, type 2; TypeProto.tensor_type 1; TypeProto.Tensor: elem_type 1, shape 2;
 *   TensorShapeProto.dim 1; Dimension: dim_value 1, dim_param 2
 * - OperatorSetIdProto: domain 1, version 2; StringStringEntryProto: key 1, value 2
 */
import { ProtoWriter } from '../util/protobuf-writer.ts';

/** ONNX IR version written (7: the first IR of opset 13). */
export const IR_VERSION = 7;
/** Default-domain opset the exporter targets. */
export const OPSET = 13;

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;

const AttrType = { FLOAT: 1, INT: 2, FLOATS: 6, INTS: 7 } as const;

/** A node attribute: an integer, a float, or a list of integers. */
export type AttrValue = { int: number } | { float: number } | { ints: readonly number[] };

/** One graph node. */
export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs?: Record<string, AttrValue>;
}

/** A constant tensor of the graph (weights, shapes). */
export interface OnnxInitializer {
  name: string;
  dims: readonly number[];
  data: Float32Array | BigInt64Array;
}

/** A graph input or output: float32 with a shape whose unknown dims are named (e.g. `batch`). */
export interface OnnxValueInfo {
  name: string;
  shape: readonly (number | string)[];
}

function attribute(name: string, v: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if ('int' in v) return w.varint(3, v.int).varint(20, AttrType.INT);
  if ('float' in v) return w.float(2, v.float).varint(20, AttrType.FLOAT);
  for (const i of v.ints) w.varint(8, i);
  return w.varint(20, AttrType.INTS);
}

function node(n: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v));
  return w;
}

function tensor(t: OnnxInitializer): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.varint(1, d);
  w.varint(2, t.data instanceof Float32Array ? DataType.FLOAT : DataType.INT64).string(8, t.name);
  // raw_data is little-endian; copy through a DataView so the bytes do not depend on the host.
  const bytes = new Uint8Array(t.data.length * (t.data instanceof Float32Array ? 4 : 8));
  const view = new DataView(bytes.buffer);
  if (t.data instanceof Float32Array) t.data.forEach((x, i) => view.setFloat32(4 * i, x, true));
  else t.data.forEach((x, i) => view.setBigInt64(8 * i, x, true));
  return w.bytes(9, bytes);
}

function valueInfo(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) shape.message(1, typeof d === 'number' ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().varint(1, DataType.FLOAT).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

/** Everything of one exported model. */
export interface OnnxModel {
  graphName: string;
  nodes: readonly OnnxNode[];
  initializers: readonly OnnxInitializer[];
  inputs: readonly OnnxValueInfo[];
  outputs: readonly OnnxValueInfo[];
  producerName: string;
  producerVersion: string;
  docString?: string;
  metadata?: Record<string, string>;
}

/** The serialized `ModelProto` (the bytes of a `.onnx` file). */
export function encodeModel(m: OnnxModel): Uint8Array {
  const graph = new ProtoWriter();
  for (const n of m.nodes) graph.message(1, node(n));
  graph.string(2, m.graphName);
  for (const t of m.initializers) graph.message(5, tensor(t));
  for (const i of m.inputs) graph.message(11, valueInfo(i));
  for (const o of m.outputs) graph.message(12, valueInfo(o));
  const model = new ProtoWriter().varint(1, IR_VERSION).string(2, m.producerName).string(3, m.producerVersion);
  if (m.docString) model.string(6, m.docString);
  model.message(7, graph).message(8, new ProtoWriter().string(1, '').varint(2, OPSET));
  for (const [k, v] of Object.entries(m.metadata ?? {})) model.message(14, new ProtoWriter().string(1, k).string(2, v));
  return model.finish();
}
