"""Flow pieces: Keras layers own the variables, TFP bijectors do the math."""

from tfglv.flows.actnorm import ActNorm, ActNormLayer
from tfglv.flows.base import (FlowBijector, FlowChain, FlowLayer,
                              LayerBijector, OnTrailingChannels)
from tfglv.flows.conv1x1 import InvertibleConv1x1, InvertibleConv1x1Layer
from tfglv.flows.coupling import (AdditiveCoupling, AffineCoupling, Coupling,
                                  CouplingLayer)
from tfglv.flows.edge_conv import (EdgeConv2D, WeightNormEdgeConv2D,
                                   ZeroEdgeConv2D)
from tfglv.flows.glow_coupling import (GlowCoupling, GlowCouplingLayer,
                                       GlowCouplingNetwork)
from tfglv.flows.glow_original import (GaussianPrior, GaussianPriorLayer,
                                       OriginalGlow, OriginalGlowLayer,
                                       OriginalGlowStepLayer)
from tfglv.flows.glow_step import GlowStepLayer
from tfglv.flows.multiscale import (MultiScaleFlow, MultiScaleFlowLayer,
                                    PriorBlockLayer)
from tfglv.flows.squeeze import Squeeze
