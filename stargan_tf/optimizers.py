"""Adam with TensorFlow's fused, in-place update kernel.

Keras' Adam builds its update from about ten element-wise ops, each materialising a temporary the size
of the variable; for the discriminator's 44.7M parameters that is several hundred MB at every step, held
while the generator's activations are alive. `ResourceApplyAdam` updates var, m and v in one pass with the
same formula (lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t); m += (g - m)(1 - beta1);
v += (g^2 - v)(1 - beta2); var -= lr_t * m / (sqrt(v) + epsilon)), so results match Keras' Adam.
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="stargan_tf")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose update is one `ResourceApplyAdam` kernel per variable."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or not hasattr(variable, "handle"):
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index].value, self._velocities[index].value
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=m.handle, v=v.handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype), use_locking=False)
