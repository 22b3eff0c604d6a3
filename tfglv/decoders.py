"""The decoder flow x -> v of each model variant (DESIGN sections 4 and 8).

    variant                                  decoder
    "glvae", "glow", "glvae_prior_only"      the refined Glow, multi-scale
                                             (`flows.MultiScaleFlowLayer`,
                                             `model.decoder`)
    "glow_original"                          Glow's own flow
                                             (`flows.glow_original`,
                                             `model.glow_original`)

Both give v the image's shape, so the model encodes, decodes, samples and
exports the same way whichever it holds.
"""

from tfglv import configs
from tfglv.flows import base
from tfglv.flows import glow_original
from tfglv.flows import multiscale


def build(model: configs.ModelConfig, condition_dim: int = 0
          ) -> base.FlowLayer:
  """The decoder layer of `model.variant`, named "decoder", every variable
  built. `condition_dim`: d_z of the couplings' condition (0: none; the
  original Glow takes none)."""
  decoder = model.decoder
  pieces = dict(
      transform=decoder.coupling, conv1x1_parameterization=decoder.conv1x1,
      net_dtype={"bfloat16": "mixed_bfloat16", "float16": "mixed_float16"
                 }.get(decoder.compute_dtype), name="decoder")
  if model.variant == "glow_original":
    if condition_dim:
      raise ValueError("The original Glow is unconditional; got "
                       f"condition_dim={condition_dim}.")
    glow = model.glow_original
    return glow_original.OriginalGlowLayer(
        model.image_shape, glow.num_levels, glow.num_steps,
        glow.hidden_channels, **pieces)
  return multiscale.MultiScaleFlowLayer(
      model.image_shape, decoder.num_steps, decoder.hidden_channels,
      num_prior_blocks=decoder.num_prior_blocks, condition_dim=condition_dim,
      alpha=decoder.alpha, **pieces)
