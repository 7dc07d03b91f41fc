"""crazyswarm2's set-points as its server turns them into the Crazyflie's (crazyflie_server.cpp).

`cmd_vel_legacy` is a geometry_msgs/Twist carrying the RPYT commander's set-point:
roll `linear.y` and pitch `-linear.x` in degrees (as cflib's `send_setpoint`
takes them), yaw rate `angular.z` in deg/s, thrust `linear.z` capped at
THRUST_CAP.
"""

from __future__ import annotations

import math

from hardware.links import crtp
from hardware.links import ros2_msgs as m

THRUST_CAP = 60000
"""crazyswarm2 caps cmd_vel_legacy's thrust here."""


def twist_of(setpoint: crtp.Rpyt) -> m.Twist:
    """crazyswarm2's cmd_vel_legacy of an RPYT set-point (thrust capped at THRUST_CAP)."""
    return m.Twist(
        m.Vector3(-setpoint.pitch_deg, setpoint.roll_deg, float(min(setpoint.thrust, THRUST_CAP))),
        m.Vector3(0.0, 0.0, setpoint.yaw_rate_deg_s),
    )


def rpyt_of(twist: m.Twist) -> crtp.Rpyt:
    """The RPYT set-point crazyswarm2's server sends for a cmd_vel_legacy."""
    thrust = int(min(max(twist.linear.z, 0.0), THRUST_CAP)) if math.isfinite(twist.linear.z) else 0
    return crtp.Rpyt(twist.linear.y, -twist.linear.x, twist.angular.z, thrust)
