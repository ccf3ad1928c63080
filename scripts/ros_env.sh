# Source this for ROS 2 on one machine: DDS discovery on localhost only, the Fast DDS profile
# with a large shared-memory segment, and a domain id (random unless ROS_DOMAIN_ID is set).
_dp_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # Kilted ignores ROS_LOCALHOST_ONLY
export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
# Fast DDS 3 (Kilted on) reads FASTDDS_DEFAULT_PROFILES_FILE and calls the FASTRTPS_ name
# deprecated; Fast DDS 2 (Humble, Jazzy: ROS_DISTRO set by their setup.bash) reads only FASTRTPS_
case "${ROS_DISTRO:-}" in
  humble|jazzy) export FASTRTPS_DEFAULT_PROFILES_FILE="$_dp_root/config/fastdds.xml" ;;
  *) export FASTDDS_DEFAULT_PROFILES_FILE="$_dp_root/config/fastdds.xml" ;;
esac
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}
unset _dp_root
