/** Model files and interop: Node file I/O, PyTorch weights. */
export {fileSystem, FileSystemOptions} from './file_system';
export {loadWeights, LoadWeightsOptions} from './weights';
export {readSafetensors, readSafetensorsFile, SafetensorsFile} from './safetensors';
export {loadTorchStateDict, LoadTorchOptions, LoadTorchResult} from './torch';
