import * as tf from '@tensorflow/tfjs';
// Silences tfjs' "you are running in Node" banner and debug checks.
tf.enableProdMode();
