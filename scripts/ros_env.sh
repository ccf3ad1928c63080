# Source this for ROS 2 on one machine: DDS discovery on localhost only, the Fast DDS profile
# with a large shared-memory segment, and a domain id (random unless ROS_DOMAIN_ID is set).
_dp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # Kilted ignores ROS_LOCALHOST_ONLY
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
export FASTDDS_DEFAULT_PROFILES_FILE="$_dp_root/config/fastdds.xml"
# (Humble's Fast DDS 2.x reads FASTRTPS_DEFAULT_PROFILES_FILE instead)
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
unset _dp_root
