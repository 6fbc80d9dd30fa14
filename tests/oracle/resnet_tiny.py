"""A torchvision ResNet with Bottleneck blocks at narrow widths: torchvision's
own ResNet class (its _make_layer, Bottleneck, _forward_impl, init loop), only
the hard-coded widths (stem 64, planes 64/128/256/512) made parameters, and fc
replaced by Identity so the output is the pooled features. Shared by the
oracle scripts that need the tiny image encoder."""
import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet


class TinyResNet(ResNet):
    def __init__(self, layers, stem_width=64, planes=64, width_per_group=64):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem_width
        self.dilation = 1
        self.groups = 1
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(Bottleneck, planes, layers[0])
        self.layer2 = self._make_layer(Bottleneck, planes * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(Bottleneck, planes * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(Bottleneck, planes * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Identity()
        for m in self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def randomise_bn(model, gen=None):
    """BN affine parameters and running statistics away from their init, so a
    test sees them (weight ~ 1 +- 0.2, bias ~ +-0.1, mean ~ +-0.1, var in [0.5, 1.5))."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
